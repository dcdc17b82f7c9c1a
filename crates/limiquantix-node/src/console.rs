//! `limiquantix.node.v1.NodeConsoleService`: a VM's interactive serial console.
//!
//! QEMU serves each VM's first serial port on `<run>/vms/<vm_id>/serial.sock` (and logs it to
//! `serial.log` whether or not anyone is attached). AttachConsole connects to that socket and
//! bridges bytes both ways: the client's `data` messages to the guest, the guest's output back.
//!
//! One session per VM: QEMU's socket chardev serves one connection at a time and would leave a
//! second one waiting silently, so the daemon keeps a set of attached VMs and refuses a second
//! AttachConsole with FAILED_PRECONDITION (it does not take the session over: an operator typing
//! into a console should not have it stolen). The session ends when the client cancels the call,
//! when the VM stops (QEMU closes the socket: the stream ends with OK), or when the daemon shuts
//! down (UNAVAILABLE). Console bytes are never logged: they may hold passwords.
//!
//! The socket is always read at once, so a client that stops reading (a suspended terminal)
//! never stalls the guest's serial port: output waits for it in one growing message, and past
//! [`MAX_PENDING`] bytes the oldest is dropped for that client (serial.log keeps everything).
//!
//! Mount with `routes.add_service(console::server(backend, shutdown_switch))`.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use limiquantix_proto::v1::node_console_service_server::{
    NodeConsoleService, NodeConsoleServiceServer,
};
use limiquantix_proto::v1::{
    ConsoleAttach, ConsoleAttached, ConsoleInput, ConsoleOutput, console_input, console_output,
};
use limiquantix_vm::model::VmId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ApiError;
use crate::translate::parse_vm_id;
use limiquantix_vm::{BackendError, ConsoleStream, VmBackend};

/// Most bytes of the serial log replayed at attach (`ConsoleAttach.replay_bytes` is reduced to it).
pub use limiquantix_proto::MAX_CONSOLE_REPLAY_BYTES as MAX_REPLAY_BYTES;

/// Largest read from the console socket.
const READ_CHUNK: usize = 16 * 1024;

/// Output messages queued for a client; output that arrives meanwhile is gathered into the next
/// message.
const OUTPUT_QUEUE: usize = 16;

/// How long output is gathered before it is sent: an imperceptible delay that turns a guest's
/// byte-by-byte serial output into few messages (HTTP/2 peers disconnect a stream that sends many
/// tiny frames they have not read yet).
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Most output gathered for a client that does not take it; beyond that the oldest bytes are
/// dropped for this client rather than slowing the guest's serial port down.
const MAX_PENDING: usize = 1 << 20;

/// How long a call may take to send its `attach` message.
const ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest message the service accepts from a client (typed bytes; a paste of up to 1 MiB).
const MAX_INPUT_MESSAGE: usize = 1 << 20;

/// The `NodeConsoleService` implementation.
pub struct ConsoleService<B> {
    backend: Arc<B>,
    /// The VMs with an open session.
    attached: Arc<Mutex<HashSet<VmId>>>,
    shutdown: watch::Sender<bool>,
}

/// Builds the tonic server of `NodeConsoleService` over `backend`, ready for `add_service`;
/// sessions end when `shutdown` turns `true`.
pub fn server<B: VmBackend>(
    backend: Arc<B>,
    shutdown: watch::Sender<bool>,
) -> NodeConsoleServiceServer<ConsoleService<B>> {
    NodeConsoleServiceServer::new(ConsoleService {
        backend,
        attached: Arc::default(),
        shutdown,
    })
    .max_decoding_message_size(MAX_INPUT_MESSAGE)
}

/// Holds a VM's place in the attached set; leaving the session frees it.
struct Session {
    vm_id: VmId,
    attached: Arc<Mutex<HashSet<VmId>>>,
}

impl Session {
    /// Takes the console of `vm_id`, or says who has it.
    fn take(attached: &Arc<Mutex<HashSet<VmId>>>, vm_id: &VmId) -> Result<Self, ApiError> {
        let mut set = attached.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(vm_id.clone()) {
            return Err(BackendError::Precondition(format!(
                "console of VM {vm_id} is already attached by another client (one session at a \
                 time; detach it first)"
            ))
            .into());
        }
        Ok(Self {
            vm_id: vm_id.clone(),
            attached: attached.clone(),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.vm_id);
    }
}

type OutputStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<ConsoleOutput, Status>> + Send>>;

#[tonic::async_trait]
impl<B: VmBackend> NodeConsoleService for ConsoleService<B> {
    type AttachConsoleStream = OutputStream;

    async fn attach_console(
        &self,
        request: Request<Streaming<ConsoleInput>>,
    ) -> Result<Response<Self::AttachConsoleStream>, Status> {
        let mut input = request.into_inner();
        let attach = first_message(&mut input).await?;
        let (id, socket, session) = self.open(&attach).await.map_err(|e| {
            tracing::info!(vm_id = ?attach.vm_id, error = %e, "console attach refused");
            Status::from(e)
        })?;
        let replay = match attach.replay_bytes.min(MAX_REPLAY_BYTES) {
            0 => Vec::new(),
            n => self
                .backend
                .console_history(&id, n as usize)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(vm_id = %id, error = %e, "serial log not replayed");
                    Vec::new()
                }),
        };
        tracing::info!(vm_id = %id, replay_bytes = replay.len(), "console attached");

        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let attached = ConsoleOutput {
            output: Some(console_output::Output::Attached(ConsoleAttached {
                vm_id: id.as_str().to_owned(),
                replay_bytes: u32::try_from(replay.len()).unwrap_or(MAX_REPLAY_BYTES),
            })),
        };
        // The channel is fresh: these two sends cannot wait.
        let _ = tx.try_send(Ok(attached));
        if !replay.is_empty() {
            let _ = tx.try_send(Ok(data(replay)));
        }
        let shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let end = bridge(&session.vm_id, socket, input, &tx, shutdown).await;
            tracing::info!(vm_id = %session.vm_id, reason = end.reason(), "console detached");
            if let End::Shutdown = end {
                let _ = tx
                    .send(Err(Status::unavailable(
                        "the daemon is shutting down; attach again once it is back",
                    )))
                    .await;
            } else if let End::BadInput(status) = end {
                let _ = tx.send(Err(status)).await;
            }
            drop(session);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl<B: VmBackend> ConsoleService<B> {
    /// Validates the attach request, takes the VM's session and connects to its console.
    async fn open(
        &self,
        attach: &ConsoleAttach,
    ) -> Result<(VmId, ConsoleStream, Session), ApiError> {
        let id = parse_vm_id("attach.vm_id", &attach.vm_id)?;
        // NOT_FOUND before anything else; the backend refuses a VM that does not run.
        self.backend.get(&id).await?;
        let session = Session::take(&self.attached, &id)?;
        let socket = self.backend.open_console(&id).await?;
        Ok((id, socket, session))
    }
}

/// Reads the first message, which must be `attach` and come within [`ATTACH_TIMEOUT`].
async fn first_message(input: &mut Streaming<ConsoleInput>) -> Result<ConsoleAttach, Status> {
    let first = tokio::time::timeout(ATTACH_TIMEOUT, input.message())
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "no `attach` message within {} s of the call",
                ATTACH_TIMEOUT.as_secs()
            ))
        })??;
    match first.and_then(|m| m.input) {
        Some(console_input::Input::Attach(a)) => Ok(a),
        Some(console_input::Input::Data(_)) => Err(ApiError::invalid(
            "input",
            "the first message must be `attach` naming the VM; `data` may only follow it",
        )
        .into()),
        None => Err(ApiError::invalid(
            "input",
            "the first message must be `attach` naming the VM (the stream was empty or the \
             message had no input)",
        )
        .into()),
    }
}

/// How a session ended.
enum End {
    /// QEMU closed the console: the VM stopped.
    VmStopped,
    /// The client cancelled the call or went away.
    ClientLeft,
    /// The daemon is shutting down.
    Shutdown,
    /// The console socket failed.
    SocketError,
    /// The client sent something other than `data` after `attach`.
    BadInput(Status),
}

impl End {
    fn reason(&self) -> &'static str {
        match self {
            End::VmStopped => "the VM stopped",
            End::ClientLeft => "the client detached",
            End::Shutdown => "the daemon is shutting down",
            End::SocketError => "the console socket failed",
            End::BadInput(_) => "the client sent a second attach",
        }
    }
}

fn data(bytes: Vec<u8>) -> ConsoleOutput {
    ConsoleOutput {
        output: Some(console_output::Output::Data(bytes)),
    }
}

/// Copies bytes both ways until one side ends. The two directions run side by side: a guest that
/// does not read its input never stops its output from reaching the client. A client that closes
/// its sending side keeps receiving output until it cancels the call.
async fn bridge(
    vm_id: &VmId,
    socket: ConsoleStream,
    input: Streaming<ConsoleInput>,
    tx: &mpsc::Sender<Result<ConsoleOutput, Status>>,
    mut shutdown: watch::Receiver<bool>,
) -> End {
    let (from_vm, to_vm) = tokio::io::split(socket);
    // Bytes a client too slow to take them lost (the guest is never held up by a client).
    let mut dropped: u64 = 0;
    let end = tokio::select! {
        end = output_to_client(vm_id, from_vm, tx, &mut dropped) => end,
        end = input_to_guest(vm_id, input, to_vm) => end,
        () = tx.closed() => End::ClientLeft,
        _ = shutdown.wait_for(|s| *s) => End::Shutdown,
    };
    if dropped > 0 {
        tracing::info!(vm_id = %vm_id, dropped_bytes = dropped, "console output the client missed");
    }
    end
}

/// The guest's output to the client. Bytes are gathered for [`GATHER`] (or until
/// [`READ_CHUNK`] of them), so a guest printing byte by byte makes few messages; a client that
/// cannot take more meanwhile gets them all in the next one, and past [`MAX_PENDING`] the oldest
/// are dropped for it (counted in `dropped`).
async fn output_to_client(
    vm_id: &VmId,
    mut from_vm: impl tokio::io::AsyncRead + Unpin,
    tx: &mpsc::Sender<Result<ConsoleOutput, Status>>,
    dropped: &mut u64,
) -> End {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    let mut due = tokio::time::Instant::now();
    loop {
        let ready = !pending.is_empty()
            && (pending.len() >= READ_CHUNK || tokio::time::Instant::now() >= due);
        tokio::select! {
            read = from_vm.read(&mut buf) => match read {
                Ok(0) => {
                    if !pending.is_empty() {
                        let _ = tx.send(Ok(data(pending))).await;
                    }
                    return End::VmStopped;
                }
                Ok(n) => {
                    if pending.is_empty() {
                        due = tokio::time::Instant::now() + GATHER;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    drop_excess(vm_id, &mut pending, dropped);
                }
                Err(e) => {
                    tracing::warn!(vm_id = %vm_id, error = %e, "reading the console socket failed");
                    return End::SocketError;
                }
            },
            () = tokio::time::sleep_until(due), if !pending.is_empty() && !ready => {}
            permit = tx.reserve(), if ready => match permit {
                Ok(permit) => permit.send(Ok(data(std::mem::take(&mut pending)))),
                Err(_) => return End::ClientLeft,
            },
        }
    }
}

/// Keeps at most [`MAX_PENDING`] bytes for a client, dropping the oldest.
fn drop_excess(vm_id: &VmId, pending: &mut Vec<u8>, dropped: &mut u64) {
    if pending.len() <= MAX_PENDING {
        return;
    }
    let excess = pending.len() - MAX_PENDING;
    if *dropped == 0 {
        tracing::info!(
            vm_id = %vm_id,
            "console client is not keeping up: dropping output (serial.log keeps it)"
        );
    }
    pending.drain(..excess);
    *dropped += excess as u64;
}

/// The client's keys to the guest.
async fn input_to_guest(
    vm_id: &VmId,
    mut input: Streaming<ConsoleInput>,
    mut to_vm: impl tokio::io::AsyncWrite + Unpin,
) -> End {
    loop {
        let bytes = match input.message().await {
            Ok(Some(ConsoleInput {
                input: Some(console_input::Input::Data(bytes)),
            })) => bytes,
            Ok(Some(ConsoleInput {
                input: Some(console_input::Input::Attach(_)),
            })) => {
                return End::BadInput(
                    ApiError::invalid(
                        "input.attach",
                        "`attach` may only be the first message; later messages carry `data`",
                    )
                    .into(),
                );
            }
            Ok(Some(ConsoleInput { input: None })) => continue,
            // The client closed its side: output goes on until it cancels.
            Ok(None) => std::future::pending().await,
            Err(_) => return End::ClientLeft,
        };
        if let Err(e) = to_vm.write_all(&bytes).await {
            tracing::warn!(vm_id = %vm_id, error = %e, "writing to the console socket failed");
            return End::SocketError;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_per_vm() {
        let attached = Arc::default();
        let id = VmId::parse("0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21").unwrap();
        let first = Session::take(&attached, &id).unwrap();
        let e = Session::take(&attached, &id).err().unwrap();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.to_string().contains("already attached by another client"));
        drop(first);
        Session::take(&attached, &id).expect("free again once the first session ends");
    }
}
