//! The reference of `bench/http.sh`: a bare actix-web server, built with the same crate
//! features and the same two workers as Pramaan, answering `GET /` with a small JSON body.
//! Every benchmark figure is reported as a ratio to this handler's rate in the same run.
//!
//!   cargo run --release -p pramaan-server --example bare -- 18080

use actix_web::{App, HttpResponse, HttpServer, web};

async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: bare PORT");
            std::process::exit(2);
        }
    };
    HttpServer::new(|| App::new().route("/", web::get().to(index)))
        .workers(2)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
