//! One small HTTP server for recast's two listeners — the operations
//! endpoints and the dev schema registry: a thread of its own that reads
//! each request (its body bounded) and answers it through a handler.

use std::io::Read;
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
    pub(crate) body: String,
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
                let header = tiny_http::Header::from_bytes("Content-Type", response.content_type)
                    .expect("content types are ASCII constants");
                let reply = tiny_http::Response::from_string(response.body)
                    .with_status_code(response.status)
                    .with_header(header);
                if let Err(e) = request.respond(reply) {
                    tracing::debug!(error = %e, "http response not delivered");
                }
            }
        })?;
    Ok(bound)
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
