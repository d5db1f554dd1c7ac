//! The `authorizer` Lambda function: API Gateway's TOKEN authorizer. It verifies the
//! caller's bearer token against the deployment's signing key and passes the caller's
//! principal and role on to the API function.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use vulnflow_shared::auth::{self, AuthorizerRequest};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::config::init_tracing();
    let secret_id = std::env::var("API_SIGNING_SECRET_ID").map_err(|_| "API_SIGNING_SECRET_ID is not set")?;
    let (config, _) = vulnflow_shared::config::aws_config().await;
    let key = auth::signing_key(&aws_sdk_secretsmanager::Client::new(&config), &secret_id).await?;
    let key = &key;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerRequest>| async move {
        match auth::verify(key, &event.payload.authorization_token, chrono::Utc::now()) {
            Ok(caller) => Ok(auth::allow_policy(&caller, &event.payload.method_arn)),
            Err(reason) => {
                tracing::info!(%reason, "token refused");
                // API Gateway answers 401 to exactly this error message.
                Err(Diagnostic { error_type: "Unauthorized".into(), error_message: "Unauthorized".into() })
            }
        }
    }))
    .await
}
