//! STUB
/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`: the `X-MLflow-Signature` value
/// (and the Standard Webhooks `webhook-signature` value, which has the same shape).
pub fn sign(key: &[u8], delivery_id: &str, timestamp: i64, body: &[u8]) -> String {
    let _ = (key, delivery_id, timestamp, body);
    String::new()
}
