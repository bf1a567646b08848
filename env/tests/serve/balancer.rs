//! Two servers behind a real nginx (the Debian package `scripts/setup.sh` installs), configured by
//! `deploy/nginx-toolenv.conf` as documented: every session's requests reach one server.

use crate::{client, post, repo, runtime, Served};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
        .expect("nginx is not installed: run ./scripts/setup.sh (it installs the Debian package)")
}

#[test]
fn sessions_stick_to_one_server_behind_nginx() {
    let a = Served::start(&["--tools", "calculator,kv_store"]);
    let b = Served::start(&["--tools", "calculator,kv_store"]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let site = std::fs::read_to_string(repo().join("deploy/nginx-toolenv.conf"))
        .unwrap()
        .replace("server 127.0.0.1:8081;", &format!("server {};", a.addr))
        .replace("server 127.0.0.1:8082;", &format!("server {};", b.addr))
        .replace(
            "listen 127.0.0.1:8080;",
            &format!("listen 127.0.0.1:{port};"),
        );
    let d = dir.path().display();
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         {site}\n}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let check = Command::new(nginx_binary())
        .args(["-t", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _nginx = Nginx(
        Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front = format!("http://127.0.0.1:{port}");
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let start = Instant::now();
        while c.get(format!("{front}/health")).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "nginx did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        const N: usize = 200;
        for i in 0..N {
            let (s, v) = post(&c, &format!("{front}/v1/sessions/user-{i}"), &json!({"seed": i})).await;
            assert_eq!(s, 201, "{v}");
            let set = json!({"calls": [{"name": "kv_store", "arguments": {"op": "set", "key": "who", "value": i}}]});
            let (s, v) = post(&c, &format!("{front}/v1/sessions/user-{i}/calls"), &set).await;
            assert_eq!((s, &v["created"]), (200, &json!(false)), "session {i} reached another server: {v}");
        }
        for i in 0..N {
            let get = json!({"calls": [{"name": "kv_store", "arguments": {"op": "get", "key": "who"}}]});
            let (_, v) = post(&c, &format!("{front}/v1/sessions/user-{i}/calls"), &get).await;
            assert_eq!(v["created"], json!(false), "{v}");
            assert_eq!(v["results"][0]["ok"]["value"], json!(i), "session {i}: {v}");
        }
        // Both servers hold some of the sessions, and together all of them.
        let live = |url: String| {
            let c = c.clone();
            async move {
                let h: Value = c.get(url).send().await.unwrap().json().await.unwrap();
                h["sessions"].as_u64().unwrap()
            }
        };
        let (na, nb) = (live(a.url("/health")).await, live(b.url("/health")).await);
        eprintln!("sessions: {na} on one server, {nb} on the other");
        assert_eq!(na + nb, N as u64);
        assert!(na > 0 && nb > 0, "all sessions on one server: {na} / {nb}");
        // Stateless requests spread over both.
        let (s, _) = post(&c, &format!("{front}/v1/reward"), &json!({"items": []})).await;
        assert_eq!(s, 200);
    });
}
