//! Reading RTSP messages off a connection, bounded: a start line plus headers (at most
//! [`MAX_HEAD`] bytes in at most [`MAX_HEAD_LINES`] lines) and a body sized by `Content-Length` (at most [`MAX_BODY`] bytes), so a
//! misbehaving peer cannot make the reader allocate without limit. The health prober reads
//! answers with it; the simulators read requests.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Largest head (start line plus headers) accepted, in bytes.
const MAX_HEAD: u64 = 16 * 1024;
/// Most lines (start line and header fields) in a head.
const MAX_HEAD_LINES: usize = 100;
/// Largest body accepted, in bytes.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A start line plus headers, as read off the wire.
pub(crate) struct Head {
    pub(crate) start: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    fn content_length(&self) -> io::Result<usize> {
        match find_header(&self.headers, "Content-Length") {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_BODY)
                .ok_or_else(|| invalid("bad Content-Length")),
        }
    }
}

pub(crate) fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one head; `None` on a clean EOF before its first byte.
pub(crate) async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Head>> {
    let mut limited = r.take(MAX_HEAD);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = limited.read_until(b'\n', &mut line).await?;
        if limited.limit() == 0 {
            return Err(invalid(&format!(
                "the header is longer than {MAX_HEAD} bytes, the most read"
            )));
        }
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(invalid("head cut short"))
            };
        }
        let line = String::from_utf8(line).map_err(|_| invalid("head is not UTF-8"))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate blank lines between messages
            }
            break;
        }
        if lines.len() == MAX_HEAD_LINES {
            return Err(invalid(&format!(
                "the header has more than {MAX_HEAD_LINES} lines, the most read"
            )));
        }
        lines.push(line.to_owned());
    }
    let start = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Some(Head { start, headers }))
}

pub(crate) async fn read_body<R: AsyncBufRead + Unpin>(
    r: &mut R,
    head: &Head,
) -> io::Result<Vec<u8>> {
    let mut body = vec![0; head.content_length()?];
    r.read_exact(&mut body).await?;
    Ok(body)
}
