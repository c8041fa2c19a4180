//! entitled: identity, organizations and entitlements in one server.
//!
//! `build_router` is what `main` serves and what the tests drive.

pub mod app;
pub mod audit;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod identity;
pub mod mail;
pub mod orgs;
pub mod portal;

pub use app::AppState;
pub use config::Config;
pub use http::build_router;

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = build_router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
