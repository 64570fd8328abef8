//! The daemons the suite depends on answer through the same client libraries the
//! collector uses. Without them this fails; it never skips.

use crate::support;

use containerd_client::services::v1::version_client::VersionClient;

#[tokio::test]
async fn dockerd_answers_through_bollard_with_a_negotiated_version() {
    let docker = bollard::Docker::connect_with_local_defaults()
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("dockerd must be running (scripts/setup starts it)");
    let v = docker.version().await.expect("docker version");
    let api = v.api_version.unwrap_or_default();
    assert!(!api.is_empty(), "no API version");
    // The negotiated version is the daemon's (1.41 for dockerd 20.10), not bollard's default.
    assert_eq!(docker.client_version().to_string(), api);
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list images");
    assert!(
        images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == "exhibit-fixture/web:1")),
        "fixture image exhibit-fixture/web:1 missing: run scripts/setup"
    );
}

#[tokio::test]
async fn containerd_answers_through_containerd_client() {
    let addr = support::containerd_address();
    let channel = containerd_client::connect(&addr).await.unwrap_or_else(|e| {
        panic!("containerd at {addr} must be running (scripts/setup starts it): {e}")
    });
    let v = VersionClient::new(channel)
        .version(())
        .await
        .expect("containerd version")
        .into_inner();
    assert!(
        v.version.starts_with("1.") || v.version.starts_with("v1.") || v.version.starts_with('2'),
        "unexpected containerd version {}",
        v.version
    );
}
