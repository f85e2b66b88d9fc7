//! `get`, `put` and `delete`: keys with their causal context, siblings
//! shown one per line (text) or as a list (JSON).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Target;
use crate::client::CtlError;
use crate::output::Format;

/// The header carrying a key's causal context.
const CONTEXT: &str = "x-dynamo-context";

/// `get KEY`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// The key.
    key: String,
    /// Read quorum for this read (1..=N).
    #[arg(long)]
    r: Option<u8>,
}

/// `put KEY VALUE`.
#[derive(clap::Args)]
pub struct PutArgs {
    /// The key.
    key: String,
    /// The value; `-` reads it from standard input.
    value: String,
    /// Context of the read this write replaces (without it, a write
    /// concurrent with what exists becomes a sibling).
    #[arg(long)]
    context: Option<String>,
    /// Write quorum for this write (1..=N).
    #[arg(long)]
    w: Option<u8>,
}

/// `delete KEY`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The key.
    key: String,
    /// Context of the read this delete replaces.
    #[arg(long)]
    context: Option<String>,
    /// Write quorum for this delete (1..=N).
    #[arg(long)]
    w: Option<u8>,
}

/// Reads a key: one value, or siblings, and the context to write with.
pub async fn get(target: &Target, args: GetArgs) -> Result<(), CtlError> {
    let url = key_url(target, &args.key, "r", args.r);
    let request = target
        .client
        .request(Method::GET, &url)
        .header("accept", "application/json");
    let answer: Value = target
        .client
        .send(&url, request)
        .await
        .map_err(|e| match e {
            CtlError::NotFound(_) => CtlError::NotFound(args.key.clone()),
            other => other,
        })?
        .json()
        .await
        .map_err(|e| CtlError::Other(format!("{url}: unexpected answer: {e}")))?;
    let values: Vec<Vec<u8>> = answer["values"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| STANDARD.decode(v.as_str()?).ok())
                .collect()
        })
        .unwrap_or_default();
    let context = answer["context"].as_str().unwrap_or_default();
    match target.format {
        Format::Json => println!(
            "{:#}",
            json!({
                "key": args.key,
                "context": context,
                "siblings": values.len(),
                "values": values.iter().map(|v| String::from_utf8_lossy(v)).collect::<Vec<_>>(),
                "values_base64": answer["values"],
            })
        ),
        Format::Text => {
            if values.len() > 1 {
                eprintln!(
                    "{} siblings (write the merged value with --context)",
                    values.len()
                );
            }
            for value in &values {
                println!("{}", String::from_utf8_lossy(value));
            }
            eprintln!("context: {context}");
        }
    }
    Ok(())
}

/// Writes a key; prints the new context.
pub async fn put(target: &Target, args: PutArgs) -> Result<(), CtlError> {
    let body = match args.value.as_str() {
        "-" => {
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| CtlError::Other(format!("reading the value from stdin: {e}")))?;
            value
        }
        value => value.as_bytes().to_vec(),
    };
    let url = key_url(target, &args.key, "w", args.w);
    let request = with_context(target.client.request(Method::PUT, &url), &args.context);
    let response = target.client.send(&url, request.body(body)).await?;
    print_context(target.format, &args.key, &response);
    Ok(())
}

/// Deletes a key; prints the context of the tombstone.
pub async fn delete(target: &Target, args: DeleteArgs) -> Result<(), CtlError> {
    let url = key_url(target, &args.key, "w", args.w);
    let request = with_context(target.client.request(Method::DELETE, &url), &args.context);
    let response = target.client.send(&url, request).await?;
    print_context(target.format, &args.key, &response);
    Ok(())
}

fn with_context(
    request: reqwest::RequestBuilder,
    context: &Option<String>,
) -> reqwest::RequestBuilder {
    match context {
        Some(context) => request.header(CONTEXT, context),
        None => request,
    }
}

fn print_context(format: Format, key: &str, response: &reqwest::Response) {
    let context = response
        .headers()
        .get(CONTEXT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match format {
        Format::Json => println!("{:#}", json!({"key": key, "context": context})),
        Format::Text => println!("context: {context}"),
    }
}

/// The URL of `key` (percent-encoded) on the node, with `quorum=value`.
fn key_url(target: &Target, key: &str, quorum: &str, value: Option<u8>) -> String {
    let mut path = format!("/v1/kv/{}", percent_encode(key));
    if let Some(value) = value {
        path.push_str(&format!("?{quorum}={value}"));
    }
    target.client.url(&target.node, &path)
}

/// Every byte but the unreserved characters as `%XX`.
fn percent_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_except_unreserved_characters() {
        assert_eq!(percent_encode("orders/1 ü"), "orders%2F1%20%C3%BC");
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
    }
}
