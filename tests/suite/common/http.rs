//! The operations listener, as a client sees it: plain HTTP/1.1 requests
//! to the address the worker logs.

use std::io::{Read, Write};
use std::time::Duration;

use super::{Scenario, wait_until};

/// `GET path` on the worker's listener: (status, body).
pub(crate) fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to /metrics");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// The value of the sample `name{labels}` in a Prometheus text body.
pub(crate) fn metric_value(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{series} not in\n{body}"))
}

/// The operations listener's address, from the worker's log.
pub(crate) fn listening(s: &Scenario, instance: &str) -> String {
    let mut address = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            address = s
                .worker_log(instance)
                .lines()
                .find_map(|l| l.split("http listening address=").nth(1).map(str::to_owned))
                .unwrap_or_default();
            !address.is_empty()
        }),
        "{}",
        s.worker_log(instance)
    );
    address
}
