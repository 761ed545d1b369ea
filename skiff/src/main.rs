//! `skiff`: the command a person types.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod down;
mod image;
mod join;
mod lab;
mod node;
mod token;
mod up;

#[derive(Parser)]
#[command(name = "skiff", version, about = "A small, fast Kubernetes work-alike")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring up a one-node cluster on this machine: control plane and node agent (Ctrl-C
    /// stops it, pods keep running; run again to resume).
    Up(up::UpArgs),
    /// Remove everything `skiff up` made on this machine (pods, containers, network, state).
    Down {
        #[arg(long, default_value = "/var/lib/skiff")]
        data_dir: PathBuf,
        #[command(flatten)]
        node: node::NodeLayout,
    },
    /// Images on a node without a registry: import archives, build a busybox image.
    Image {
        #[command(subcommand)]
        cmd: image::ImageCmd,
    },
    /// Bootstrap tokens that let nodes join (`skiff join`).
    Token {
        #[command(subcommand)]
        cmd: token::TokenCmd,
    },
    /// Join this machine to a cluster as a node: get its own credentials with a bootstrap
    /// token, then run the node agent and proxy with them.
    Join(node::JoinArgs),
    /// A cluster of several nodes on this machine, each in its own network namespace.
    Lab {
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
    /// Benchmarks against the reference tools on this machine.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

/// Containers' shims start this binary as their log driver (below): one process per
/// container, with a few KiB of buffers. mimalloc advises its arena for transparent huge
/// pages, and the runtime's first allocation, before `main`, would fault in 2 MiB pages:
/// 4 MiB a logger, 1 GiB for 250 pods. So a logger turns them off from a constructor,
/// which runs before the runtime and sees `argv` without allocating.
#[used]
#[unsafe(link_section = ".init_array")]
static LOGGER_WITHOUT_HUGE_PAGES: extern "C" fn(
    libc::c_int,
    *const *const libc::c_char,
    *const *const libc::c_char,
) = logger_without_huge_pages;

extern "C" fn logger_without_huge_pages(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    if argv.is_null() {
        return;
    }
    let key = skiff_agent::logs::logger::MODE_KEY.as_bytes();
    for i in 1..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: glibc passes constructors the process's argc and argv: `argc` pointers
        // to NUL-terminated strings, each checked for null.
        let arg = unsafe { *argv.add(i) };
        if !arg.is_null() && unsafe { std::ffi::CStr::from_ptr(arg) }.to_bytes() == key {
            // SAFETY: prctl(2) with integer arguments, affecting this process only (a
            // logger starts no children).
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
            return;
        }
    }
}

fn main() -> anyhow::Result<()> {
    // `skiff up` runs the agent in this process, so containers' shims start this binary as
    // their log driver.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if skiff_agent::logs::logger::invoked(&args) {
        std::process::exit(skiff_agent::logs::logger::run(&args));
    }
    cli_main()
}

#[tokio::main]
async fn cli_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // hickory logs every DNS query at info, which `skiff bench proxy` would measure.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Up(args) => up::run(args).await.context("skiff up"),
        Cmd::Down { data_dir, node } => down::run(data_dir, node).await.context("skiff down"),
        Cmd::Image { cmd } => image::run(cmd).await,
        Cmd::Token { cmd } => token::run(cmd).await.context("skiff token"),
        Cmd::Join(args) => node::run(args).await.context("skiff join"),
        Cmd::Lab { cmd } => lab::run(cmd).await,
        Cmd::Bench { which } => bench::run(which).await,
    }
}
