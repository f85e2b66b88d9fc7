//! The cost of one HTTP hop: a trivial server that answers the store's key
//! routes without doing any work, and the `baseline` mode that starts it as
//! a child process and runs a workload against it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::client::TargetUrl;
use crate::monitor::Watched;
use crate::report::Report;
use crate::runner::{self, Settings};
use crate::workload::make_value;

/// What the server prints on stdout once it is bound, followed by the address.
const LISTENING: &str = "listening on ";

/// How long `baseline` waits for the child server to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until killed: `GET /v1/kv/{key}` answers 200 with a fixed
/// `value_size`-byte body, `PUT` and `DELETE` read the body and answer 204,
/// `GET /readyz` answers 200. Prints `listening on ADDR` to stdout once bound.
pub async fn serve(listen: SocketAddr, value_size: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("no local address")?;
    println!("{LISTENING}{addr}");
    let value = make_value(value_size);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Only a latency optimisation; serve the connection either way.
        let _ = stream.set_nodelay(true);
        let value = value.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, value.clone()));
            // A client hanging up mid-request is not worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    value: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_key = request
        .uri()
        .path()
        .strip_prefix("/v1/kv/")
        .is_some_and(|key| !key.is_empty());
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/readyz") => (StatusCode::OK, Bytes::from_static(b"ready")),
        (&Method::GET, _) if is_key => (StatusCode::OK, value),
        (&Method::PUT | &Method::DELETE, _) if is_key => {
            let mut body = request.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    return Ok(plain(StatusCode::BAD_REQUEST, Bytes::new()));
                }
            }
            (StatusCode::NO_CONTENT, Bytes::new())
        }
        _ => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found")),
    };
    Ok(plain(status, body))
}

fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

/// Makes the kernel kill the child `command` starts when this process
/// dies first.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Starts `dynamo-bench baseline-server` as a child process on a free
/// loopback port, runs the workload against it (monitoring the child), and
/// stops it.
pub async fn run(settings: &Settings) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut command = Command::new(&exe);
    command
        .args(["baseline-server", "--listen", "127.0.0.1:0", "--value-size"])
        .arg(settings.value_size.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {} baseline-server", exe.display()))?;
    let pid = child.id().context("the baseline server exited at once")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from the baseline server")?;

    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line())
        .await
        .context("the baseline server did not start in time")?
        .context("cannot read from the baseline server")?
        .context("the baseline server exited before listening")?;
    let Some(addr) = line.strip_prefix(LISTENING) else {
        bail!("unexpected first line from the baseline server: {line:?}");
    };
    let url = TargetUrl::parse(&format!("http://{addr}"))
        .with_context(|| format!("bad address from the baseline server: {addr}"))?;

    let mut settings = settings.clone();
    settings.monitor.push(Watched::new(pid, "baseline-server"));
    let report = runner::run(&[url], None, &settings).await;

    child
        .kill()
        .await
        .context("cannot stop the baseline server")?;
    report
}
