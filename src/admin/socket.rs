//! The admin unix socket: one JSON request line in, one JSON response line out.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::{execute, Request, Response};
use crate::app::App;

/// Requests and answers larger than this are refused (a full listings file fits comfortably).
const MAX_LINE: usize = 256 * 1024 * 1024;

pub fn socket_path(storage: &Path) -> PathBuf {
    storage.join("admin.sock")
}

/// Binds the socket (replacing a stale file from a crashed run: we hold the store lock, so no other
/// daemon can be using it) with mode 0660.
pub fn bind(storage: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(storage);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub async fn serve_loop(app: Arc<App>, listener: UnixListener, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(&app, stream).await {
                tracing::debug!(error = %e, "admin socket: connection ended with an error");
            }
        });
    }
    if let Some(path) = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)) {
        let _ = std::fs::remove_file(path);
    }
}

async fn handle(app: &Arc<App>, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    read_line(read, &mut line).await?;
    if line.trim() == EXPORT {
        return stream_export(app, write).await;
    }
    let response: Response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => execute(app, req).await,
        Err(e) => Err(format!("bad admin request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| b"{\"Err\":\"encoding failed\"}".to_vec());
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// The request line that asks for an export: answered by many lines, see [`export`].
const EXPORT: &str = "export";

/// Streams every record as one JSON line, then a final `{"Ok": count}` (or `{"Err": ...}`).
async fn stream_export(app: &App, mut write: tokio::net::unix::OwnedWriteHalf) -> std::io::Result<()> {
    // The store is read on a blocking thread; lines come back through a bounded channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    let store = app.store.clone();
    let reader = tokio::task::spawn_blocking(move || {
        store.export(|v| tx.blocking_send(v.to_string()).map_err(|_| std::io::ErrorKind::BrokenPipe.into()))
    });
    while let Some(line) = rx.recv().await {
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
    let last: Response = match reader.await {
        Ok(Ok(n)) => Ok(serde_json::json!(n)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    write.write_all(serde_json::to_string(&last)?.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

/// Asks a running daemon for an export, handing each record line to `line`. `Ok(None)` when no
/// daemon answers.
pub async fn export(
    storage: &Path,
    line: &mut impl FnMut(&str) -> std::io::Result<()>,
) -> std::io::Result<Option<usize>> {
    let mut stream = match UnixStream::connect(socket_path(storage)).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => return Ok(None),
        Err(e) => return Err(e),
    };
    stream.write_all(format!("{EXPORT}\n").as_bytes()).await?;
    let mut lines = BufReader::new(stream).lines();
    while let Some(l) = lines.next_line().await? {
        // Records are objects with "key", "tree" and "value"; the last line is {"Ok": n} or {"Err": ..}.
        if !(l.starts_with("{\"Ok\"") || l.starts_with("{\"Err\"")) {
            line(&l)?;
            continue;
        }
        return match serde_json::from_str::<Response>(&l) {
            Ok(Ok(n)) => Ok(Some(n.as_u64().unwrap_or(0) as usize)),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(e) => Err(std::io::Error::new(ErrorKind::InvalidData, e)),
        };
    }
    Err(std::io::Error::new(ErrorKind::UnexpectedEof, "the daemon ended the export early"))
}

/// Whether a daemon listens on the store's admin socket.
pub async fn is_answering(storage: &Path) -> bool {
    UnixStream::connect(socket_path(storage)).await.is_ok()
}

/// Sends a request to a running daemon. `Ok(None)` when no daemon answers on the socket.
pub async fn call(storage: &Path, req: &Request) -> std::io::Result<Option<Response>> {
    let mut stream = match UnixStream::connect(socket_path(storage)).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut answer = String::new();
    read_line(stream, &mut answer).await?;
    serde_json::from_str(&answer).map(Some).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
}

/// Reads one line of at most [`MAX_LINE`] bytes.
async fn read_line(reader: impl tokio::io::AsyncRead + Unpin, buf: &mut String) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    BufReader::new(reader.take(MAX_LINE as u64)).read_line(buf).await?;
    Ok(())
}
