//! Who may call the sync API: bearer tokens (JWT, HS256) naming a principal and a role,
//! signed with a key the deployment keeps in Secrets Manager. The API Gateway
//! authorizer verifies them on AWS; the API function verifies them itself where no
//! authorizer ran (LocalStack's community edition does not run authorizers).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Starts and cancels syncs, changes connectors.
    Admin,
    /// Reads connectors, jobs and history.
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reader => "reader",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not a signed JWT (header.payload.signature)")]
    Malformed,
    #[error("the token's signature does not match this deployment's key")]
    BadSignature,
    #[error("the token expired at {0}: ask for a new one")]
    Expired(DateTime<Utc>),
    #[error("the token names no known role (admin or reader)")]
    UnknownRole,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn signature(key: &[u8], signed_part: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(signed_part.as_bytes());
    mac
}

/// A token for `principal` with `role`, valid for `lifetime`.
pub fn mint(key: &[u8], principal: &str, role: Role, lifetime: Duration, now: DateTime<Utc>) -> String {
    let claims =
        Claims { sub: principal.to_string(), role: role.as_str().to_string(), exp: (now + lifetime).timestamp() };
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let signed_part = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
    let signature = URL_SAFE_NO_PAD.encode(signature(key, &signed_part).finalize().into_bytes());
    format!("{signed_part}.{signature}")
}

/// The caller a token names, if its signature and expiry hold. Accepts the token with
/// or without a `Bearer ` prefix.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<Caller, AuthError> {
    let token = token.trim().strip_prefix("Bearer ").unwrap_or(token.trim());
    let (signed_part, signature_text) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let (header, payload) = signed_part.split_once('.').ok_or(AuthError::Malformed)?;
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(AuthError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(AuthError::Malformed);
    }
    let given = URL_SAFE_NO_PAD.decode(signature_text).map_err(|_| AuthError::Malformed)?;
    signature(key, signed_part).verify_slice(&given).map_err(|_| AuthError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(AuthError::Malformed)?;
    let expires = DateTime::from_timestamp(claims.exp, 0).ok_or(AuthError::Malformed)?;
    if expires <= now {
        return Err(AuthError::Expired(expires));
    }
    let role = Role::parse(&claims.role).ok_or(AuthError::UnknownRole)?;
    Ok(Caller { principal: claims.sub, role })
}

/// The key tokens are signed with: the deployment's secret in Secrets Manager.
pub async fn signing_key(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Vec<u8>, crate::errors::SyncError> {
    let output = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        crate::errors::SyncError::storage(
            format!("reading the API signing key {secret_id}"),
            aws_sdk_secretsmanager::error::DisplayErrorContext(&e),
            true,
        )
    })?;
    output.secret_string.map(String::into_bytes).filter(|key| key.len() >= 32).ok_or_else(|| {
        crate::errors::SyncError::Internal(format!("the API signing key {secret_id} must hold 32 characters or more"))
    })
}

/// API Gateway's TOKEN authorizer event.
#[derive(Debug, Deserialize)]
pub struct AuthorizerRequest {
    #[serde(rename = "authorizationToken")]
    pub authorization_token: String,
    #[serde(rename = "methodArn")]
    pub method_arn: String,
}

/// The authorizer's answer: an allow policy for the whole API stage (so API Gateway may
/// cache it across routes), and the caller for the API function to check roles on.
pub fn allow_policy(caller: &Caller, method_arn: &str) -> serde_json::Value {
    // arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*/*
    let stage_arn = method_arn.splitn(3, '/').take(2).collect::<Vec<_>>().join("/");
    serde_json::json!({
        "principalId": caller.principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{ "Action": "execute-api:Invoke", "Effect": "Allow", "Resource": format!("{stage_arn}/*/*") }]
        },
        "context": { "principal": caller.principal, "role": caller.role.as_str() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a deployment's signing key, 32+ bytes long";

    #[test]
    fn a_minted_token_verifies_to_its_principal_and_role() {
        let now = Utc::now();
        let token = mint(KEY, "ana@example.com", Role::Admin, Duration::hours(1), now);
        let caller = verify(KEY, &format!("Bearer {token}"), now).expect("verifies");
        assert_eq!(caller, Caller { principal: "ana@example.com".into(), role: Role::Admin });
    }

    #[test]
    fn a_token_signed_with_another_key_or_altered_is_refused() {
        let now = Utc::now();
        let token = mint(KEY, "ana@example.com", Role::Reader, Duration::hours(1), now);
        assert_eq!(verify(b"another key entirely", &token, now), Err(AuthError::BadSignature));
        let (header, rest) = token.split_once('.').expect("three parts");
        let (_, signature) = rest.rsplit_once('.').expect("three parts");
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"ana@example.com","role":"admin","exp":99999999999}"#);
        assert_eq!(verify(KEY, &format!("{header}.{claims}.{signature}"), now), Err(AuthError::BadSignature));
        assert_eq!(verify(KEY, "not-a-token", now), Err(AuthError::Malformed));
    }

    #[test]
    fn the_authorizer_allows_the_whole_stage_and_passes_the_role_on() {
        let caller = Caller { principal: "ana@example.com".into(), role: Role::Reader };
        let policy = allow_policy(&caller, "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/jobs/42");
        assert_eq!(
            policy["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"
        );
        assert_eq!(policy["context"]["role"], "reader");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let then = Utc::now() - Duration::hours(2);
        let token = mint(KEY, "ana@example.com", Role::Admin, Duration::hours(1), then);
        assert!(matches!(verify(KEY, &token, Utc::now()), Err(AuthError::Expired(_))));
    }
}
