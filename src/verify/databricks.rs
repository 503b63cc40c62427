//! STUB
/// Lowercase hex HMAC-SHA256 of the body: the `X-Databricks-Signature` value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let _ = (secret, body);
    String::new()
}
