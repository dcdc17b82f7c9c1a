//! Raw mode of the terminal on stdin, for the interactive console: every byte typed goes to the
//! guest as it is (Ctrl-C included), nothing is echoed locally, and the guest's output is not
//! rewritten. The settings found are restored when the guard drops, and by a panic hook if the
//! program panics first (so no exit path leaves the terminal raw).

use std::os::fd::AsFd as _;
use std::sync::{Mutex, Once};

use anyhow::Context as _;
use rustix::termios::{self, OptionalActions, Termios};

/// The settings to restore, while raw mode is on.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Raw mode, on while this lives.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    /// Puts the terminal on stdin (which must be one) in raw mode.
    pub fn enter() -> anyhow::Result<Self> {
        let stdin = std::io::stdin();
        let saved =
            termios::tcgetattr(stdin.as_fd()).context("cannot read the terminal's settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
        restore_on_panic();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)
            .context("cannot put the terminal in raw mode")?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts back the settings saved by [`RawMode::enter`], once.
fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(t) = saved {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &t);
    }
}

/// Chains a terminal restore in front of the current panic hook (once per process).
fn restore_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
