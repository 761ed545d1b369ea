//! `skiff image …`: images for a node without a registry. `import` puts an OCI or Docker
//! archive into the node's containerd; `busybox` builds a small image from the host's
//! busybox-static (for trying skiff, and for tests, with no internet).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use skiff_agent::daemon::NAMESPACE;
use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::testimage::TestImage;
use skiff_agent::runtime::{Runtime, reference};

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Import the images of an OCI image layout or `docker save` archive into the node.
    Import {
        /// The archive (`.tar`).
        file: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Build an image of the host's busybox-static (`sh` as its command) and import it, or
    /// write it as an OCI archive with `--output`.
    Busybox {
        /// The image's name.
        #[arg(long, default_value = "busybox:1.36")]
        name: String,
        /// Write the archive here instead of importing it.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the node's images.
    Ls {
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's containerd socket; by default the one `skiff up` runs under --data-dir.
    #[arg(long)]
    containerd_socket: Option<PathBuf>,
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
}

impl NodeArgs {
    fn socket(&self) -> PathBuf {
        self.containerd_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agent/containerd/containerd.sock"))
    }

    async fn connect(&self) -> anyhow::Result<Containerd> {
        let socket = self.socket();
        Containerd::connect(ContainerdConfig::new(&socket, NAMESPACE))
            .await
            .with_context(|| {
                format!(
                    "connecting to containerd at {} (is the node up? --containerd-socket names another)",
                    socket.display()
                )
            })
    }
}

pub async fn run(cmd: ImageCmd) -> anyhow::Result<()> {
    match cmd {
        ImageCmd::Import { file, node } => {
            let rt = node.connect().await?;
            let refs = rt
                .import_archive(&file)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            for r in refs {
                println!("imported {} ({})", r.name, r.digest);
            }
        }
        ImageCmd::Busybox { name, output, node } => {
            let full = reference::normalize(&name)
                .with_context(|| format!("{name:?} is not a valid image name"))?;
            let image = TestImage::busybox(&full);
            match output {
                Some(path) => {
                    image
                        .write_oci_archive(&path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote {full} to {}", path.display());
                }
                None => {
                    let rt = node.connect().await?;
                    let dir = tempfile::tempdir().context("creating a temporary directory")?;
                    let path = dir.path().join("busybox.tar");
                    image
                        .write_oci_archive(&path)
                        .context("building the busybox image (is busybox-static installed?)")?;
                    for r in rt.import_archive(&path).await.context("importing it")? {
                        println!("imported {} ({})", r.name, r.digest);
                    }
                }
            }
        }
        ImageCmd::Ls { node } => {
            let rt = node.connect().await?;
            for r in rt.list_images().await.context("listing images")? {
                println!("{}\t{}", r.name, r.digest);
            }
        }
    }
    Ok(())
}
