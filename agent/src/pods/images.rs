//! Making a container's image present, as kubelet's image manager does: the pull policy
//! (`Always`, `IfNotPresent`, `Never`, and its defaults), one pull per image at a time however
//! many pods wait for it, pulls of different images in parallel, and the events a user reads
//! in `kubectl describe pod`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::runtime::{ImageRef, RegistryAuth, Runtime, reference};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy a container gets: its own, or Kubernetes' default (Always for `:latest`
    /// or an untagged name, IfNotPresent otherwise).
    pub fn of(image: &str, policy: Option<&str>) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => {
                let name = image.split('@').next().unwrap_or(image);
                let last = name.rsplit('/').next().unwrap_or(name);
                let latest = match last.rsplit_once(':') {
                    Some((_, tag)) => tag == "latest",
                    None => !image.contains('@'),
                };
                if latest {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

/// Why the image is not there: the container's waiting reason and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError {
    /// `ErrImagePull`, `ErrImageNeverPull`, `InvalidImageName`.
    pub reason: &'static str,
    pub message: String,
}

/// What [`ImageService::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The image was there and the policy did not ask for a pull.
    Present { image: String },
    /// Pulled; `waited` includes time spent behind another pull of the same image.
    Pulled {
        image: ImageRef,
        took: Duration,
        waited: Duration,
    },
}

impl Ensured {
    /// The normalized name the runtime knows the image by.
    pub fn name(&self) -> &str {
        match self {
            Ensured::Present { image } => image,
            Ensured::Pulled { image, .. } => &image.name,
        }
    }
}

type PullFuture = Shared<BoxFuture<'static, Result<(ImageRef, Duration), String>>>;

/// Pulls images for every pod of the node.
pub struct ImageService {
    runtime: Arc<dyn Runtime>,
    inflight: Mutex<HashMap<String, PullFuture>>,
}

impl ImageService {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        ImageService {
            runtime,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Makes `image` (as the pod spec writes it) present under `policy`; `on_pull` is called
    /// when a pull actually starts (for the "Pulling" event).
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: &[RegistryAuth],
        on_pull: impl FnOnce(),
    ) -> Result<Ensured, ImageError> {
        let name = reference::normalize(image).ok_or_else(|| ImageError {
            reason: "InvalidImageName",
            message: format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            ),
        })?;
        if policy != PullPolicy::Always {
            let present = self
                .runtime
                .image_exists(&name)
                .await
                .map_err(|e| ImageError {
                    reason: "ErrImagePull",
                    message: e.to_string(),
                })?;
            if present {
                return Ok(Ensured::Present { image: name });
            }
            if policy == PullPolicy::Never {
                return Err(ImageError {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    ),
                });
            }
        }
        on_pull();
        let started = Instant::now();
        let pull = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(name.clone())
                .or_insert_with(|| {
                    let runtime = self.runtime.clone();
                    let name = name.clone();
                    let auth = auth.to_vec();
                    async move {
                        let t = Instant::now();
                        runtime
                            .pull_image(&name, &auth)
                            .await
                            .map(|r| (r, t.elapsed()))
                            .map_err(|e| e.to_string())
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let result = pull.clone().await;
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            // A later pull of the same image may have taken the slot already.
            if inflight.get(&name).is_some_and(|f| f.ptr_eq(&pull)) {
                inflight.remove(&name);
            }
        }
        match result {
            Ok((image, took)) => Ok(Ensured::Pulled {
                image,
                took,
                waited: started.elapsed(),
            }),
            Err(message) => Err(ImageError {
                reason: "ErrImagePull",
                message,
            }),
        }
    }
}

/// `repo@digest`: the image ID Kubernetes reports for a container.
pub fn image_id(name: &str, digest: &str) -> String {
    let repo = name.split('@').next().unwrap_or(name);
    let last_slash = repo.rfind('/').map_or(0, |i| i + 1);
    let repo = match repo[last_slash..].rfind(':') {
        Some(i) => &repo[..last_slash + i],
        None => repo,
    };
    format!("{repo}@{digest}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::runtime::ImageConfig;
    use crate::runtime::fake::{Call, FakeRuntime};

    #[test]
    fn default_policies() {
        assert_eq!(PullPolicy::of("busybox", None), PullPolicy::Always);
        assert_eq!(PullPolicy::of("busybox:latest", None), PullPolicy::Always);
        assert_eq!(
            PullPolicy::of("busybox:1.36", None),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::of("localhost:5000/app", None),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of("busybox@sha256:abc", None),
            PullPolicy::IfNotPresent
        );
        assert_eq!(PullPolicy::of("busybox", Some("Never")), PullPolicy::Never);
    }

    #[test]
    fn image_ids() {
        assert_eq!(
            image_id("docker.io/library/busybox:1.36", "sha256:ab"),
            "docker.io/library/busybox@sha256:ab"
        );
        assert_eq!(
            image_id("localhost:5000/app:v1", "sha256:cd"),
            "localhost:5000/app@sha256:cd"
        );
    }

    fn config(name: &str) -> ImageConfig {
        ImageConfig {
            name: name.into(),
            target_digest: "sha256:1".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn policies_decide_when_to_pull() {
        let rt = Arc::new(FakeRuntime::new());
        let svc = ImageService::new(rt.clone());
        let name = "docker.io/library/busybox:1.36";
        rt.add_registry_image(config(name));
        let err = svc
            .ensure("busybox:1.36", PullPolicy::Never, &[], || {})
            .await
            .unwrap_err();
        assert_eq!(err.reason, "ErrImageNeverPull");
        let mut pulled = false;
        let got = svc
            .ensure("busybox:1.36", PullPolicy::IfNotPresent, &[], || {
                pulled = true
            })
            .await
            .unwrap();
        assert!(pulled && matches!(got, Ensured::Pulled { .. }));
        let got = svc
            .ensure("busybox:1.36", PullPolicy::IfNotPresent, &[], || {
                panic!("no pull")
            })
            .await
            .unwrap();
        assert_eq!(got, Ensured::Present { image: name.into() });
        svc.ensure("busybox:1.36", PullPolicy::Always, &[], || {})
            .await
            .unwrap();
        let pulls = rt
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Pull(..)))
            .count();
        assert_eq!(pulls, 2);
        rt.fail_pull(name, "connection refused");
        let err = svc
            .ensure("busybox:1.36", PullPolicy::Always, &[], || {})
            .await
            .unwrap_err();
        assert_eq!(err.reason, "ErrImagePull");
        assert!(
            err.message.contains("connection refused"),
            "{}",
            err.message
        );
        let err = svc
            .ensure("Not/Valid", PullPolicy::Always, &[], || {})
            .await
            .unwrap_err();
        assert_eq!(err.reason, "InvalidImageName");
    }

    #[tokio::test]
    async fn concurrent_pulls_of_one_image_are_one_pull() {
        let rt = Arc::new(FakeRuntime::new());
        let svc = ImageService::new(rt.clone());
        rt.add_registry_image(config("docker.io/library/busybox:1.36"));
        let all = futures::future::join_all(
            (0..5).map(|_| svc.ensure("busybox:1.36", PullPolicy::Always, &[], || {})),
        )
        .await;
        assert!(all.iter().all(Result::is_ok));
        let pulls = rt
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Pull(..)))
            .count();
        assert_eq!(pulls, 1);
    }
}
