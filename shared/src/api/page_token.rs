//! History page tokens: the store's cursor followed by a MAC of it under the
//! deployment's key, so that a token the API did not give (forged, or cut) is refused
//! as a bad request before it reaches the store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::errors::{Result, SyncError};

/// Keeps MACs of page tokens apart from any other use of the same key.
const PURPOSE: &[u8] = b"vulnflow history page token";

#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl PageTokens {
    pub fn new(key: &[u8]) -> Self {
        PageTokens { key: key.to_vec() }
    }

    fn mac(&self, cursor: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(PURPOSE);
        mac.update(cursor.as_bytes());
        mac
    }

    pub(super) fn seal(&self, cursor: &str) -> String {
        format!("{cursor}.{}", URL_SAFE_NO_PAD.encode(self.mac(cursor).finalize().into_bytes()))
    }

    /// The cursor a token this API gave holds.
    pub(super) fn open<'t>(&self, token: &'t str) -> Result<&'t str> {
        token
            .rsplit_once('.')
            .filter(|(cursor, tag)| {
                URL_SAFE_NO_PAD.decode(tag).is_ok_and(|tag| self.mac(cursor).verify_slice(&tag).is_ok())
            })
            .map(|(cursor, _)| cursor)
            .ok_or_else(|| {
                SyncError::invalid_field("next_token", "is not a token this API gave: pass next_token back as it came")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_and_anything_else_is_refused() {
        let tokens = PageTokens::new(b"deployment key");
        let sealed = tokens.seal("eyJjdXJzb3IiOjF9");
        assert_eq!(tokens.open(&sealed).expect("opens"), "eyJjdXJzb3IiOjF9");
        let (cursor, tag) = sealed.rsplit_once('.').expect("cursor.tag");
        for forged in [
            "eyJjdXJzb3IiOjF9".to_string(),
            format!("eyJjdXJzb3IiOjJ9.{tag}"),
            format!("{cursor}.{}", &tag[1..]),
            format!("{cursor}."),
            String::new(),
        ] {
            assert!(tokens.open(&forged).is_err(), "{forged:?} is refused");
        }
        assert!(PageTokens::new(b"another deployment").open(&sealed).is_err(), "a token holds in its deployment");
    }
}
