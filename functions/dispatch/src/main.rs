//! The `dispatch` Lambda function: on each tick of the deployment's EventBridge rule,
//! starts the scheduled syncs that are due.

use chrono::Utc;
use vulnflow_shared::config::sync_starter_from_env;
use vulnflow_shared::dispatch::{Tick, dispatch};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run_with(sync_starter_from_env(), |starter, tick: Tick| async move {
        dispatch(&starter, tick.time.unwrap_or_else(Utc::now)).await
    })
    .await
}
