//! The cases of the matrix: what each measures, and how the outputs name it.
use crate::files::{IN_FLIGHT, READ_FILE, READ_SIZE, SYNC_EVERY, WRITE_CHUNK};
use crate::hostile::{Storm, GOOD_CONNS, GOOD_SIZE};

/// One case of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Request/response echo over `conns` connections with `size`-byte messages.
    Rr { conns: usize, size: usize },
    /// `conns` connections each streaming 64 KiB writes; figures per MiB.
    Stream { conns: usize },
    /// The server's resident memory per idle connection, over `conns` connections.
    Idle { conns: usize },
    /// 4 KiB reads at random offsets of a 256 MiB file in the page cache, 64 in flight.
    FileRandomRead,
    /// Sequential 64 KiB writes to a fresh file, an fsync after every 1 MiB.
    FileWriteFsync,
    /// HTTP/1.1 keep-alive GETs over `conns` connections, answered by hyper (`crate::http`).
    Http { conns: usize },
    /// The request/response echo of `crate::hostile` (GOOD_CONNS connections, GOOD_SIZE-byte
    /// messages) beside `storm`.
    Hostile { storm: Storm },
    /// Open-loop echo (`crate::latency`): `size`-byte requests over `conns` connections on a
    /// fixed schedule of `rate` requests/s, `load` % of the slowest server's closed-loop peak.
    Latency {
        conns: usize,
        size: usize,
        load: u32,
        rate: u64,
    },
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
            Case::FileRandomRead => "file random read".into(),
            Case::FileWriteFsync => "file write+fsync".into(),
            Case::Http { conns } => format!("http c={conns}"),
            Case::Hostile { storm } => format!("hostile {}", storm.name()),
            Case::Latency {
                conns, size, load, ..
            } => format!("latency {} c={conns} {load}%", size_label(*size)),
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
            Case::FileRandomRead => format!(
                "file random read: {} reads at random offsets of a {} MiB file in the page \
                 cache, {IN_FLIGHT} in flight (per read)",
                size_label(READ_SIZE),
                READ_FILE >> 20
            ),
            Case::FileWriteFsync => format!(
                "file write + fsync: sequential {} writes to a fresh file, fsync after every \
                 {SYNC_EVERY} ({} MiB) (per write)",
                size_label(WRITE_CHUNK),
                (WRITE_CHUNK as u64 * SYNC_EVERY) >> 20
            ),
            Case::Http { conns } => format!(
                "http: HTTP/1.1 keep-alive GET, {conns} connection{}, a {} body from hyper \
                 (per request)",
                plural(*conns),
                size_label(crate::http::BODY.len())
            ),
            Case::Hostile { storm } => format!(
                "hostile: request/response, {}, {GOOD_CONNS} connections, beside {} (per \
                 request)",
                size_label(GOOD_SIZE),
                storm.about()
            ),
            Case::Latency {
                conns,
                size,
                load,
                rate,
            } => format!(
                "latency: open loop, {}, {conns} connection{}, {load}% of the slowest peak = \
                 {rate} requests/s (per request)",
                size_label(*size),
                plural(*conns)
            ),
        }
    }

    /// Whether it is an http case (run against the http servers only).
    pub fn is_http(&self) -> bool {
        matches!(self, Case::Http { .. })
    }

    /// Whether it is a hostile case (run against `crate::hostile::SERVERS` only).
    pub fn is_hostile(&self) -> bool {
        matches!(self, Case::Hostile { .. })
    }

    /// Whether it is an open-loop latency case (run against `crate::latency::SERVERS` only).
    pub fn is_latency(&self) -> bool {
        matches!(self, Case::Latency { .. })
    }

    /// Whether its unit is a request (its rate is requests/s).
    pub fn per_request(&self) -> bool {
        self.unit() == "request"
    }

    /// Whether it is one of the file cases (run by `files`, not against a server).
    pub fn is_file(&self) -> bool {
        matches!(self, Case::FileRandomRead | Case::FileWriteFsync)
    }

    pub(super) fn unit(&self) -> &'static str {
        match self {
            Case::Rr { .. } | Case::Http { .. } | Case::Hostile { .. } | Case::Latency { .. } => {
                "request"
            }
            Case::Stream { .. } => "MiB",
            Case::Idle { .. } => "idle connection",
            Case::FileRandomRead => "read",
            Case::FileWriteFsync => "write",
        }
    }

    /// The kind, connection count and message size, as the files name them (for the file
    /// cases: the operations in flight and the bytes of each; for http: the body's bytes;
    /// for hostile: the well-behaved client's, the storm apart).
    pub(super) fn parts(&self) -> (&'static str, usize, usize) {
        match *self {
            Case::Rr { conns, size } => ("rr", conns, size),
            Case::Stream { conns } => ("stream", conns, STREAM_CHUNK),
            Case::Idle { conns } => ("idle", conns, IDLE_ECHO),
            Case::FileRandomRead => ("file_random_read", IN_FLIGHT, READ_SIZE),
            Case::FileWriteFsync => ("file_write_fsync", 1, WRITE_CHUNK),
            Case::Http { conns } => ("http", conns, crate::http::BODY.len()),
            Case::Hostile { .. } => ("hostile", GOOD_CONNS, GOOD_SIZE),
            Case::Latency { conns, size, .. } => ("latency", conns, size),
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
