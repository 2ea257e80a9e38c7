//! One small HTTP server for recast's two listeners — the operations
//! endpoints and the dev schema registry: a thread of its own that reads
//! each request (its body bounded) and answers it through a handler. A
//! streamed answer (the live tap) gets a thread of its own, so it never
//! holds up `/metrics` or the probes.

use std::io::{Read, Write};
use std::net::SocketAddr;

/// A request as a handler sees it.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// Path and query, as sent.
    pub(crate) url: &'a str,
    /// The body, or why it could not be read (over the limit, not UTF-8):
    /// each listener answers that in its own format.
    pub(crate) body: Result<String, String>,
}

/// A handler's answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Body,
}

/// Writes a streamed body (sent chunked), flushing as it goes; the body
/// ends when it returns.
pub(crate) type Stream = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

pub(crate) enum Body {
    Whole(String),
    Streamed(Stream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Whole(text) => f.debug_tuple("Whole").field(text).finish(),
            Body::Streamed(_) => f.write_str("Streamed"),
        }
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::Whole(text)
    }
}

/// Serves on `address` (port 0 picks a free one) from a thread named
/// `thread`; returns the bound address. Bodies are read up to
/// `max_body_bytes`.
pub(crate) fn serve(
    address: &str,
    thread: &str,
    max_body_bytes: u64,
    handler: impl Fn(&Request<'_>) -> Response + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let server = tiny_http::Server::http(address).map_err(std::io::Error::other)?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("not an IP listener"))?;
    std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            for mut request in server.incoming_requests() {
                let body = read_body(&mut request, max_body_bytes);
                let response = handler(&Request {
                    method: request.method().as_str(),
                    url: request.url(),
                    body,
                });
                let body = match response.body {
                    Body::Whole(body) => body,
                    Body::Streamed(stream) => {
                        let (status, content_type) = (response.status, response.content_type);
                        let streaming = std::thread::Builder::new()
                            .name("recast-http-stream".into())
                            .spawn(move || {
                                let mut writer = request.into_writer();
                                let written = write!(
                                    writer,
                                    "HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n\
                                     Transfer-Encoding: chunked\r\n\r\n"
                                )
                                .and_then(|()| stream(&mut Chunked(&mut writer)))
                                // The last chunk: the body ends here, whatever
                                // becomes of the connection.
                                .and_then(|()| writer.write_all(b"0\r\n\r\n"))
                                .and_then(|()| writer.flush());
                                if let Err(e) = written {
                                    tracing::debug!(error = %e, "streamed http response ended");
                                }
                            });
                        if let Err(e) = streaming {
                            tracing::warn!(error = %e, "no thread for a streamed http response");
                        }
                        continue;
                    }
                };
                let header = tiny_http::Header::from_bytes("Content-Type", response.content_type)
                    .expect("content types are ASCII constants");
                let reply = tiny_http::Response::from_string(body)
                    .with_status_code(response.status)
                    .with_header(header);
                if let Err(e) = request.respond(reply) {
                    tracing::debug!(error = %e, "http response not delivered");
                }
            }
        })?;
    Ok(bound)
}

/// Writes each write as one chunk of a chunked body.
struct Chunked<W>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", bytes.len())?;
        self.0.write_all(bytes)?;
        self.0.write_all(b"\r\n")?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn read_body(request: &mut tiny_http::Request, limit: u64) -> Result<String, String> {
    let mut body = String::new();
    let read = request
        .as_reader()
        .take(limit.saturating_add(1))
        .read_to_string(&mut body)
        .map_err(|e| format!("cannot read the request body: {e}"))?;
    if read as u64 > limit {
        return Err(format!("request body over {limit} bytes"));
    }
    Ok(body)
}
