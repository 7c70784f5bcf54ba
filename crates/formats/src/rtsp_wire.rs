//! Reading RTSP messages off a connection, bounded: a start line plus headers (at most
//! 16 KiB in at most 100 lines) and a body sized by `Content-Length` (at most 64 KiB), so a
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

pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A start line plus headers, as read off the wire.
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
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

pub fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one head; `None` on a clean EOF before its first byte.
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Head>> {
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

pub async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, head: &Head) -> io::Result<Vec<u8>> {
    let mut body = vec![0; head.content_length()?];
    r.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads messages off `bytes` until the end or an error; the heads read.
    fn read_all(bytes: &[u8]) -> Vec<Head> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = tokio::io::BufReader::new(bytes);
            let mut heads = Vec::new();
            while let Ok(Some(head)) = read_head(&mut reader).await {
                if read_body(&mut reader, &head).await.is_err() {
                    break;
                }
                heads.push(head);
            }
            heads
        })
    }

    #[test]
    fn an_endless_header_or_blank_lines_are_refused_not_buffered() {
        let endless = "RTSP/1.0 200 OK\r\nX: y\r\n".repeat(10_000);
        assert!(read_all(endless.as_bytes()).is_empty());
        let blank = "\r\n".repeat(20_000);
        assert!(read_all(blank.as_bytes()).is_empty());
        let big_body = "RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n";
        assert!(read_all(big_body.as_bytes()).is_empty());
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(512))]

        /// Whatever a peer sends, reading ends, with heads within the bounds; a well-formed
        /// answer is read whole.
        #[test]
        fn any_bytes_are_read_or_refused_within_the_bounds(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            status in 100u16..600,
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..4),
            body in "[ -~]{0,40}",
        ) {
            let mut answer = format!("RTSP/1.0 {status} Whatever\r\n");
            for (name, value) in &headers {
                prop_assume!(!name.eq_ignore_ascii_case("content-length"));
                answer.push_str(&format!("{name}: {value}\r\n"));
            }
            answer.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            for input in [bytes.as_slice(), answer.as_bytes()] {
                for head in read_all(input) {
                    prop_assert!(head.headers.len() < MAX_HEAD_LINES);
                    prop_assert!(head.start.len() as u64 <= MAX_HEAD);
                }
            }
            prop_assert_eq!(read_all(answer.as_bytes()).len(), 1);
        }
    }
}
