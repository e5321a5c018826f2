//! An echo server where every connection is its own WebAssembly instance:
//! Shoal embedded as a proxy would embed it.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:7000
//! # elsewhere:
//! nc 127.0.0.1 7000
//! ```
//!
//! The guest, `examples/echo.wat`, reads its connection (WASI fd 3) and
//! writes every byte back until the client closes. The accept loop is a
//! green thread of the runtime; each accepted connection gets a fresh
//! instance on its own green thread, so a client that sends nothing parks
//! only its own instance, and a busy one is preempted every timeslice.
//!
//! This is the whole mechanism in a page; `shoal::server::ConnectionServer`
//! (what `shoal serve` runs) adds outcome counters, refusal of connections
//! beyond a limit, and a graceful stop.

use shoal::runtime::Runtime;
use shoal::scheduler::net::TcpListener;
use shoal::wasi::{Socket, WasiCtx};
use shoal::{Contract, Linker};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());

    // One worker per core. Every instance may use 1 s of CPU time and one
    // 64 KiB page of memory: a misbehaving guest ends with a trap, alone.
    let runtime = Runtime::builder().build()?;
    let module = runtime.compile(include_str!("echo.wat"))?;
    let mut linker = Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)?;
    let contract = Contract {
        max_memory_pages: 1,
        cpu_budget_epochs: Some(runtime.epochs(Duration::from_secs(1))),
        ..runtime.contract().clone()
    };
    // Link and check once; every connection then spawns from the template.
    let echo = runtime.template_with_contract(&module, &linker, "_start", contract)?;

    let listener = TcpListener::bind(addr.as_str())?;
    println!(
        "echo server on {}: one instance per connection",
        listener.local_addr()?
    );

    // The accept loop: a green thread, so `accept` parks it, not a worker.
    let accept_loop = runtime.executor().spawn(move || -> std::io::Result<()> {
        loop {
            let (stream, peer) = listener.accept()?;
            // The connection becomes the guest's fd 3.
            let ctx = match WasiCtx::builder().socket(Socket::from(stream)).build() {
                Ok(ctx) => ctx,
                Err(e) => {
                    eprintln!("{peer}: {e}");
                    continue;
                }
            };
            match echo.spawn_with(ctx, Vec::new()) {
                // Detached: the instance closes the connection when it ends.
                Ok(instance) => drop(instance),
                Err(e) => eprintln!("{peer}: refused: {e}"),
            }
        }
    })?;
    accept_loop.join()??;
    Ok(())
}
