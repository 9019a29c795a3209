//! Liveness: the process is up and serving HTTP. No I/O, so a slow database never makes an
//! orchestrator kill a healthy process. (Readiness, which checks dependencies, comes with
//! the operations work.)

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/livez", get(livez))
}

async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
