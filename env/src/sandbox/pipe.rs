//! Bounded in-memory stdout/stderr for guests.
//!
//! wasmtime-wasi's `MemoryOutputPipe` also has a capacity, but overflowing it surfaces as an
//! untyped trap message. This pipe records the overflow in a flag and traps with
//! [`OutputOverflow`], so the host reports `output_too_large` precisely and the guest is stopped at
//! the first byte over the cap instead of burning its CPU budget on output nobody will read.

use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The trap payload raised when a guest writes past its cap.
#[derive(Debug, thiserror::Error)]
#[error("{stream} exceeded its cap of {limit} bytes")]
pub struct OutputOverflow {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The cap in bytes.
    pub limit: usize,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: BytesMut,
    overflowed: bool,
}

/// A cloneable handle to one capped buffer; clones share the same bytes.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    stream: &'static str,
    limit: usize,
    inner: Arc<Mutex<Buffer>>,
}

impl CappedPipe {
    /// A new empty pipe named `stream` (for messages) that holds at most `limit` bytes.
    pub fn new(stream: &'static str, limit: usize) -> Self {
        CappedPipe {
            stream,
            limit,
            inner: Arc::default(),
        }
    }

    /// The bytes written so far and whether the guest tried to write past the cap.
    pub fn take(&self) -> (Bytes, bool) {
        let mut buf = lock(&self.inner);
        let overflowed = buf.overflowed;
        (std::mem::take(&mut buf.bytes).freeze(), overflowed)
    }

    /// Appends `data` whole, or records the overflow and appends nothing.
    fn append(&self, data: &[u8]) -> Result<(), OutputOverflow> {
        let mut buf = lock(&self.inner);
        if data.len() > self.limit - buf.bytes.len() {
            return Err(self.overflow(&mut buf));
        }
        buf.bytes.extend_from_slice(data);
        Ok(())
    }

    fn overflow(&self, buf: &mut Buffer) -> OutputOverflow {
        buf.overflowed = true;
        OutputOverflow {
            stream: self.stream,
            limit: self.limit,
        }
    }
}

fn trap(overflow: OutputOverflow) -> StreamError {
    StreamError::Trap(wasmtime::Error::new(overflow))
}

// A poisoned lock only means another call on this pipe panicked mid-write; the bytes are still
// a valid prefix, so keep going rather than propagate the panic.
fn lock(m: &Mutex<Buffer>) -> std::sync::MutexGuard<'_, Buffer> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes).map_err(trap)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let mut buf = lock(&self.inner);
        match self.limit - buf.bytes.len() {
            0 => Err(trap(self.overflow(&mut buf))),
            room => Ok(room),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncCapped(self.clone()))
    }
}

/// The tokio-facing side, used only by WASIp3 paths; same cap, same flag.
struct AsyncCapped(CappedPipe);

impl tokio::io::AsyncWrite for AsyncCapped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = self.0.append(data).map(|()| data.len());
        std::task::Poll::Ready(written.map_err(std::io::Error::other))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
