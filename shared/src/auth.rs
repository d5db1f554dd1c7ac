//! Who may call the sync API: bearer tokens (JWT, HS256) naming a principal and a role,
//! signed with a key the deployment keeps in Secrets Manager. The API Gateway
//! authorizer verifies them on AWS; the API function verifies them itself where no
//! authorizer ran (LocalStack's community edition does not run authorizers).

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

/// A token for `principal` with `role`, valid for `lifetime`.
///
/// # Panics
///
/// If `key` is empty: HS256 signs with a secret, and [`signing_key`] never gives an empty one.
pub fn mint(key: &[u8], principal: &str, role: Role, lifetime: Duration, now: DateTime<Utc>) -> String {
    let claims =
        Claims { sub: principal.to_string(), role: role.as_str().to_string(), exp: (now + lifetime).timestamp() };
    EncodingKey::from_secret(key)
        .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key))
        .expect("signing HS256 claims fails only for an empty key")
}

/// The caller a token names, if its signature and expiry hold. Accepts the token with
/// or without a `Bearer ` prefix.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<Caller, AuthError> {
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token);
    // An empty key has signed nothing.
    let key = DecodingKey::from_secret(key).map_err(|_| AuthError::BadSignature)?;
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &hs256_without_expiry())
        .map_err(|refused| match refused.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            _ => AuthError::Malformed,
        })?
        .claims;
    let expires = DateTime::from_timestamp(claims.exp, 0).ok_or(AuthError::Malformed)?;
    if expires <= now {
        return Err(AuthError::Expired(expires));
    }
    let role = Role::parse(&claims.role).ok_or(AuthError::UnknownRole)?;
    Ok(Caller { principal: claims.sub, role })
}

/// HS256 and no other algorithm (`none` included). The expiry is left to [`verify`]: it
/// holds against the caller's `now`, not the system clock, and is refused naming its time.
fn hs256_without_expiry() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation
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
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

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

    /// A token signed with this deployment's key, with a header and claims of the test's choosing.
    fn signed(header: &Header, claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_secret(KEY).expect("a non-empty key");
        jsonwebtoken::encode(header, claims, &key).expect("HMAC signs any claims")
    }

    #[test]
    fn only_hs256_is_accepted_even_under_this_deployments_key() {
        let now = Utc::now();
        let claims =
            json!({ "sub": "ana@example.com", "role": "admin", "exp": (now + Duration::hours(1)).timestamp() });
        assert!(
            verify(KEY, &signed(&Header::new(Algorithm::HS256), &claims), now).is_ok(),
            "the claims themselves hold"
        );
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = signed(&Header::new(algorithm), &claims);
            assert_eq!(verify(KEY, &token, now), Err(AuthError::Malformed), "{algorithm:?}");
        }
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()));
        assert_eq!(verify(KEY, &unsigned, now), Err(AuthError::Malformed), "alg none");
    }

    #[test]
    fn a_signed_token_needs_a_future_expiry_and_a_known_role() {
        let now = DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01T00:00:00Z");
        let header = Header::new(Algorithm::HS256);
        let at_now = json!({ "sub": "ana@example.com", "role": "admin", "exp": 1_767_225_600 });
        assert_eq!(verify(KEY, &signed(&header, &at_now), now), Err(AuthError::Expired(now)), "exp is exclusive");
        let owner = json!({ "sub": "ana@example.com", "role": "owner", "exp": 1_767_225_601 });
        assert_eq!(verify(KEY, &signed(&header, &owner), now), Err(AuthError::UnknownRole));
        let no_expiry = json!({ "sub": "ana@example.com", "role": "admin" });
        assert_eq!(verify(KEY, &signed(&header, &no_expiry), now), Err(AuthError::Malformed));
    }
}
