//! Connections the simulator can cut: a fault knob may ask a handler to close its connection
//! without an answer (a reset in the middle of an upload body), which an axum handler cannot
//! do by itself. Each accepted socket carries a [`CutSwitch`]; a handler that finds it in its
//! request extensions (`ConnectInfo<CutSwitch>`) and pulls it makes every later read and write
//! on the socket fail, so hyper drops the connection and the kernel resets it (unread bytes
//! are still queued).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The listener: a TCP listener whose sockets have TCP_NODELAY and a cut switch.
pub struct CuttableListener(pub TcpListener);

/// One accepted socket.
pub struct CuttableConn {
    io: TcpStream,
    cut: CutSwitch,
}

/// Pull it to kill the connection it belongs to.
#[derive(Clone, Default)]
pub struct CutSwitch(Arc<AtomicBool>);

impl CutSwitch {
    pub fn cut(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "sim: connection cut")
}

impl Listener for CuttableListener {
    type Io = CuttableConn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        // Without TCP_NODELAY a response written in two pieces waits for the client's delayed
        // ACK (40 ms on Linux): every small API call would cost that.
        let _ = io.set_nodelay(true);
        (CuttableConn { io, cut: CutSwitch::default() }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for CutSwitch {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        stream.io().cut.clone()
    }
}

impl AsyncRead for CuttableConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
