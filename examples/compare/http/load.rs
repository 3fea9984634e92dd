//! The http load: the closed loop of `crate::load` with an HTTP/1.1 keep-alive GET as the
//! exchange. Each connection sends the same fixed request, reads the response just far
//! enough to know where it ends (the status line, the headers up to the blank line, a
//! Content-Length body) and sends the next request once it has all of it. Anything else is an
//! error: a status other than 200, a chunked body, `Connection: close`, bytes after the body.
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::BODY;
use crate::load::{closed_loop, connect_with, Exchange, Outcome};

/// The request every connection sends, again and again.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: corering-compare\r\n\r\n";
/// Bytes taken per read.
const RX: usize = 16 * 1024;
/// A response head longer than this is an error.
const HEAD_MAX: usize = 8 * 1024;

/// The GET exchange.
struct Get;

/// What a connection has of the response it is reading.
#[derive(Default)]
pub struct Reading {
    /// The head so far, until its blank line has come.
    head: Vec<u8>,
    /// The body's length (from Content-Length) and the bytes of it read, once the head is in.
    body: Option<(usize, usize)>,
}

impl Exchange for Get {
    type State = Reading;

    fn state(&self) -> Reading {
        Reading::default()
    }

    fn request(&self, _seq: usize) -> &[u8] {
        REQUEST
    }

    fn read_limit(&self, _st: &Reading) -> usize {
        RX
    }

    fn take(
        &self,
        st: &mut Reading,
        _seq: usize,
        sent: usize,
        data: &[u8],
    ) -> Result<bool, String> {
        if sent < REQUEST.len() {
            return Err("response before the whole request was sent".into());
        }
        match st.body {
            Some(_) => take_body(st, data),
            None => take_head(st, data),
        }
    }

    fn reset(&self, st: &mut Reading) {
        st.head.clear();
        st.body = None;
    }
}

/// Adds `data` to the head being read, and what follows its blank line to the body.
fn take_head(st: &mut Reading, data: &[u8]) -> Result<bool, String> {
    // The common case: the whole head in one read, parsed where it lies.
    if st.head.is_empty() {
        if let Some(end) = find_blank_line(data) {
            st.body = Some((content_length(&data[..end])?, 0));
            return take_body(st, &data[end + 4..]);
        }
    }
    let from = st.head.len().saturating_sub(3);
    st.head.extend_from_slice(data);
    let Some(end) = find_blank_line(&st.head[from..]).map(|p| from + p) else {
        if st.head.len() > HEAD_MAX {
            return Err(format!("no end of the response head in {HEAD_MAX} bytes"));
        }
        return Ok(false);
    };
    st.body = Some((content_length(&st.head[..end])?, 0));
    let rest = st.head.split_off(end + 4);
    take_body(st, &rest)
}

/// Adds `data` to the body being read: whether it is complete, or what is wrong with it.
fn take_body(st: &mut Reading, data: &[u8]) -> Result<bool, String> {
    let Some((len, got)) = st.body.as_mut() else {
        return Err("body before the head".into());
    };
    if *got + data.len() > *len {
        return Err(format!(
            "{} bytes after the {len}-byte body (one request is in flight)",
            *got + data.len() - *len
        ));
    }
    if BODY.get(*got..*got + data.len()) != Some(data) {
        return Err(format!(
            "the body differs from {:?}",
            String::from_utf8_lossy(BODY)
        ));
    }
    *got += data.len();
    Ok(*got == *len)
}

/// Where the first CRLF CRLF in `b` starts.
fn find_blank_line(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Checks a response head (without its blank line) and returns its Content-Length.
fn content_length(head: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("bad status line {status:?}"));
    }
    if parts.next() != Some("200") {
        return Err(format!("status line {status:?}, not 200"));
    }
    let mut len = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!(
                "Transfer-Encoding: {value} (only Content-Length bodies are read)"
            ));
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            return Err("the server closes the connection (Connection: close)".into());
        }
    }
    len.ok_or_else(|| "no Content-Length".into())
}

/// One GET on each connection of a batch (blocking, with the read timeout `connect_with`
/// set), each response read whole.
fn get_handshake(batch: &[TcpStream]) -> Result<(), (usize, io::Error)> {
    let fail = |i: usize, e: String| (i, io::Error::other(format!("first GET: {e}")));
    for (i, mut s) in batch.iter().enumerate() {
        s.write_all(REQUEST).map_err(|e| fail(i, e.to_string()))?;
    }
    let mut rx = vec![0u8; RX];
    for (i, mut s) in batch.iter().enumerate() {
        let mut st = Reading::default();
        loop {
            let n = s.read(&mut rx).map_err(|e| fail(i, e.to_string()))?;
            if n == 0 {
                return Err(fail(i, "the server closed the connection".into()));
            }
            if Get
                .take(&mut st, 0, REQUEST.len(), &rx[..n])
                .map_err(|e| fail(i, e))?
            {
                break;
            }
        }
    }
    Ok(())
}

/// HTTP/1.1 keep-alive GETs over `conns` connections in a closed loop.
pub fn run<S>(
    addr: &str,
    conns: usize,
    warmup: Duration,
    measure: Duration,
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let streams = connect_with(addr, conns, &get_handshake)?;
    closed_loop(streams, Get, RX, warmup, measure, mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: x\r\n\r\nhello";

    /// Feeds `parts` as successive reads: the answer to the last one.
    fn feed(parts: &[&[u8]]) -> Result<bool, String> {
        let mut st = Get.state();
        let mut done = Ok(false);
        for p in parts {
            done = Get.take(&mut st, 0, REQUEST.len(), p);
        }
        done
    }

    #[test]
    fn whole_response_in_one_read() {
        assert_eq!(feed(&[OK]), Ok(true));
    }

    #[test]
    fn response_split_anywhere() {
        for cut in 1..OK.len() {
            assert_eq!(feed(&[&OK[..cut], &OK[cut..]]), Ok(true), "cut at {cut}");
            assert_eq!(feed(&[&OK[..cut]]), Ok(false), "cut at {cut}");
        }
    }

    #[test]
    fn state_is_reusable_after_reset() {
        let mut st = Get.state();
        assert_eq!(Get.take(&mut st, 0, REQUEST.len(), &OK[..20]), Ok(false));
        Get.reset(&mut st);
        assert_eq!(Get.take(&mut st, 1, REQUEST.len(), OK), Ok(true));
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nworld",
            b"SSH-2.0\r\n\r\n",
        ];
        for b in bad {
            assert!(feed(&[b]).is_err(), "{:?}", String::from_utf8_lossy(b));
        }
    }
}
