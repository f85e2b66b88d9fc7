//! The shopping cart example: `cargo run -p dynamo-client --example cart --
//! http://127.0.0.1:7001 [key]` adds and removes items and prints the cart.

mod cart;

use dynamo_client::Client;

#[tokio::main]
async fn main() -> Result<(), dynamo_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7001".into());
    let key = args.next().unwrap_or_else(|| "carts/example".into());
    let client = Client::builder([url]).build()?;
    for item in ["apple", "bread", "milk"] {
        cart::add(&client, &key, item).await?;
    }
    cart::remove(&client, &key, "bread").await?;
    println!("{key}: {:?}", cart::items(&client, &key).await?);
    Ok(())
}
