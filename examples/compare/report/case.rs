//! The cases of the matrix: what each measures, and how the outputs name it.

/// One case of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Request/response echo over `conns` connections with `size`-byte messages.
    Rr { conns: usize, size: usize },
    /// `conns` connections each streaming 64 KiB writes; figures per MiB.
    Stream { conns: usize },
    /// The server's resident memory per idle connection, over `conns` connections.
    Idle { conns: usize },
}

/// Streaming: bytes per write.
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Idle connections: the size of the one echo each makes.
pub const IDLE_ECHO: usize = 64;

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Case {
    pub fn label(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!("rr {} c={conns}", size_label(*size)),
            Case::Stream { conns } => format!("stream x{conns}"),
            Case::Idle { conns } => format!("idle x{conns}"),
        }
    }

    pub(super) fn title(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!(
                "request/response, {}, {conns} connection{} (per request)",
                size_label(*size),
                plural(*conns)
            ),
            Case::Stream { conns } => format!(
                "streaming, {conns} connection{}, 64 KiB writes (per MiB echoed)",
                plural(*conns)
            ),
            Case::Idle { conns } => format!(
                "memory per idle connection, {conns} connection{} (server RSS growth ÷ {conns}, \
                 after one {IDLE_ECHO} B echo each)",
                plural(*conns)
            ),
        }
    }

    pub(super) fn unit(&self) -> &'static str {
        match self {
            Case::Rr { .. } => "request",
            Case::Stream { .. } => "MiB",
            Case::Idle { .. } => "idle connection",
        }
    }

    /// The kind, connection count and message size, as the files name them.
    pub(super) fn parts(&self) -> (&'static str, usize, usize) {
        match *self {
            Case::Rr { conns, size } => ("rr", conns, size),
            Case::Stream { conns } => ("stream", conns, STREAM_CHUNK),
            Case::Idle { conns } => ("idle", conns, IDLE_ECHO),
        }
    }
}

pub(super) fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}
