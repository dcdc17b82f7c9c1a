//! `lqctl vm console`: the interactive serial console (the daemon's NodeConsoleService).
//!
//! On a terminal, stdin goes raw (see [`crate::rawmode`]): every key goes to the guest, Ctrl-C
//! included, and Ctrl-] (byte 0x1d) detaches, like `virsh console`. Without a terminal on stdin
//! (a pipe, a script, a test), stdin's bytes are forwarded as they are and the session ends
//! `--linger` after stdin ends. Either way `--until TEXT` detaches as soon as the guest has
//! printed TEXT, and the session ends when the VM stops.

use std::io::IsTerminal as _;
use std::io::Read as _;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use limiquantix_proto::v1::{
    ConsoleAttach, ConsoleInput, ConsoleOutput, VmStatusResponse, console_input, console_output,
};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::rawmode::RawMode;
use crate::units::parse_duration;

/// The byte Ctrl-] sends: detach.
pub const ESCAPE: u8 = 0x1d;

/// Most bytes the daemon replays (`--replay`).
const MAX_REPLAY: u32 = limiquantix_proto::MAX_CONSOLE_REPLAY_BYTES;

/// `vm console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// Print the serial log (its last 1000 lines) and exit, without attaching.
    #[arg(long)]
    pub log: bool,
    /// First print this many bytes of the end of the serial log (at most 65536).
    #[arg(long, default_value_t = 0, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_REPLAY)), conflicts_with = "log")]
    pub replay: u32,
    /// Detach as soon as the guest has printed TEXT (for scripts).
    #[arg(long, value_name = "TEXT", conflicts_with = "log")]
    pub until: Option<String>,
    /// Without a terminal on stdin: how long to keep printing the guest's output after stdin
    /// ends.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION", conflicts_with = "log")]
    pub linger: Duration,
}

/// What the stdin reader saw.
enum Keys {
    /// Bytes to send.
    Bytes(Vec<u8>),
    /// Ctrl-] on a terminal.
    Detach,
}

/// Why the session ended.
enum End {
    /// Ctrl-], or stdin ended on a terminal.
    Detached,
    /// `--until` text seen.
    Matched,
    /// stdin ended (not a terminal) and `--linger` passed.
    InputDone,
    /// The daemon ended the stream: the VM stopped.
    VmStopped,
}

/// Attaches to the serial console of `vm` until the user detaches, stdin ends, `--until`
/// matches, or the VM stops.
pub async fn attach(ctx: &Ctx, vm: &VmStatusResponse, args: &ConsoleArgs) -> anyhow::Result<()> {
    let tty = std::io::stdin().is_terminal();
    let (to_daemon, rx) = mpsc::channel(64);
    let first = ConsoleInput {
        input: Some(console_input::Input::Attach(ConsoleAttach {
            vm_id: vm.vm_id.clone(),
            replay_bytes: args.replay,
        })),
    };
    to_daemon.send(first).await?;
    let mut output = ctx
        .daemon
        .console()
        .attach_console(ReceiverStream::new(rx))
        .await
        .or_fail(&ctx.daemon)?;
    match output.message().await {
        Ok(Some(ConsoleOutput {
            output: Some(console_output::Output::Attached(_)),
        })) => {}
        Ok(_) => bail!("the daemon did not open the console of {}", vm.name),
        Err(status) => return Err(ctx.daemon.error(&status)),
    }

    let raw = if tty {
        let raw = RawMode::enter()?;
        eprint!(
            "Connected to the serial console of {} (escape: Ctrl-] to detach)\r\n",
            vm.name
        );
        Some(raw)
    } else {
        None
    };
    let keys = read_stdin(tty);
    let end = session(ctx, &mut output, keys, &to_daemon, args, tty).await;
    drop(raw);
    match end? {
        End::Detached if tty => eprintln!("\nDetached from the serial console of {}.", vm.name),
        End::VmStopped => eprintln!("\nThe console of {} closed: the VM stopped.", vm.name),
        End::Detached | End::InputDone | End::Matched => {}
    }
    Ok(())
}

/// Copies the guest's output to stdout and the keys to the daemon until the session ends.
async fn session(
    ctx: &Ctx,
    output: &mut tonic::Streaming<ConsoleOutput>,
    mut keys: mpsc::Receiver<Keys>,
    to_daemon: &mpsc::Sender<ConsoleInput>,
    args: &ConsoleArgs,
    tty: bool,
) -> anyhow::Result<End> {
    let mut stdout = tokio::io::stdout();
    let mut matcher = args.until.as_deref().map(Matcher::new);
    let mut keys_open = true;
    let linger = tokio::time::sleep(Duration::MAX);
    tokio::pin!(linger);
    let end = loop {
        tokio::select! {
            // Output first: what the guest printed is shown before a linger ends the session.
            biased;
            message = output.message() => match message {
                Ok(Some(ConsoleOutput { output: Some(console_output::Output::Data(bytes)) })) => {
                    stdout.write_all(&bytes).await?;
                    stdout.flush().await?;
                    if matcher.as_mut().is_some_and(|m| m.feed(&bytes)) {
                        break End::Matched;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break End::VmStopped,
                Err(status) => return Err(ctx.daemon.error(&status)),
            },
            key = keys.recv(), if keys_open => match key {
                Some(Keys::Bytes(bytes)) => {
                    let data = ConsoleInput { input: Some(console_input::Input::Data(bytes)) };
                    if to_daemon.send(data).await.is_err() {
                        break End::VmStopped;
                    }
                }
                Some(Keys::Detach) => break End::Detached,
                None if tty => break End::Detached,
                None => {
                    keys_open = false;
                    linger.as_mut().reset(tokio::time::Instant::now() + args.linger);
                }
            },
            () = &mut linger => break End::InputDone,
        }
    };
    if let (Some(text), End::VmStopped | End::InputDone) = (&args.until, &end) {
        bail!("the console ended before the guest printed {text:?}");
    }
    Ok(end)
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled; the thread ends
/// with the process). On a terminal, Ctrl-] ends the reading with [`Keys::Detach`].
fn read_stdin(tty: bool) -> mpsc::Receiver<Keys> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let escape = if tty {
                chunk.iter().position(|&b| b == ESCAPE)
            } else {
                None
            };
            let before = &chunk[..escape.unwrap_or(n)];
            if !before.is_empty() && tx.blocking_send(Keys::Bytes(before.to_vec())).is_err() {
                return;
            }
            if escape.is_some() {
                let _ = tx.blocking_send(Keys::Detach);
                return;
            }
        }
    });
    rx
}

/// Finds a text in a byte stream that arrives in chunks (a match may span chunks).
struct Matcher {
    needle: Vec<u8>,
    tail: Vec<u8>,
}

impl Matcher {
    fn new(text: &str) -> Self {
        Matcher {
            needle: text.as_bytes().to_vec(),
            tail: Vec::new(),
        }
    }

    /// Whether the stream seen so far, ending with `chunk`, contains the text.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        self.tail.extend_from_slice(chunk);
        let found = self.needle.is_empty()
            || self
                .tail
                .windows(self.needle.len())
                .any(|w| w == self.needle.as_slice());
        let keep = self.needle.len().saturating_sub(1);
        let cut = self.tail.len().saturating_sub(keep);
        self.tail.drain(..cut);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_may_span_chunks() {
        let mut m = Matcher::new("ECHO hello");
        assert!(!m.feed(b"boot...\r\nLQ-TINY-GUEST EC"));
        assert!(!m.feed(b"HO hel"));
        assert!(m.feed(b"lo-console\r\n"));
        let mut m = Matcher::new("abc");
        assert!(!m.feed(b"ab"));
        assert!(!m.feed(b"xc"));
        assert!(m.feed(b"zzabc"));
    }
}
