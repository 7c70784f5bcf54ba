//! An RTSP reader for tests: plays a URL over TCP (interleaved) the way a viewer does, so a
//! test can hold a session open and see when the server ends it.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reader playing `url` (RTSP over TCP, interleaved): `DESCRIBE`, `SETUP` of the first
/// medium, `PLAY`; the session lasts as long as the returned connection.
pub async fn play(url: &str) -> TcpStream {
    let authority = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next());
    let stream = TcpStream::connect(authority.expect("an rtsp:// URL"))
        .await
        .expect("connect to the RTSP server");
    let mut stream = BufReader::new(stream);
    let (head, sdp) = rtsp_call(
        &mut stream,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"),
    )
    .await;
    assert!(head.starts_with("RTSP/1.0 200"), "DESCRIBE {url}: {head}");
    let base = header(&head, "content-base").unwrap_or_else(|| format!("{url}/"));
    let control = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=control:"))
        .find(|c| *c != "*")
        .expect("a medium with a control attribute");
    let track = if control.starts_with("rtsp://") {
        control.to_owned()
    } else {
        format!("{}/{control}", base.trim_end_matches('/'))
    };
    let (head, _) = rtsp_call(&mut stream, &format!("SETUP {track} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")).await;
    assert!(head.starts_with("RTSP/1.0 200"), "SETUP {track}: {head}");
    let session = header(&head, "session").expect("a session");
    let session = session.split(';').next().unwrap_or_default();
    let (head, _) = rtsp_call(
        &mut stream,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n"),
    )
    .await;
    assert!(head.starts_with("RTSP/1.0 200"), "PLAY {url}: {head}");
    stream.into_inner()
}

/// Sends `request` (its head without the final blank line) and reads the answer: its head
/// and body.
async fn rtsp_call(stream: &mut BufReader<TcpStream>, request: &str) -> (String, String) {
    use tokio::io::AsyncReadExt;
    stream
        .get_mut()
        .write_all(format!("{request}\r\n").as_bytes())
        .await
        .expect("send an RTSP request");
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = stream
            .read_line(&mut line)
            .await
            .expect("read an RTSP answer");
        if n == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = header(&head, "content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .expect("read an RTSP body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// The value of header `name` (lower case) in an answer's head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
