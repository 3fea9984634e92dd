// cargo run --release --example idle_heap -- [uring|epoll]   (MODE=pending|recv|echo)
//! Heap bytes per idle echo connection (a measurement aid).
fn heap() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks }
}
fn main() {
    let backend = std::env::args().nth(1).unwrap_or("uring".into());
    let choice = backend.parse().unwrap();
    let rt = corering::Builder::new().backend(choice).build().unwrap();
    rt.block_on(async {
        let l = corering::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut warm = std::net::TcpStream::connect(a).unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        std::io::Write::write_all(&mut warm, b"xy").unwrap();
        {
            let p = s.recv_pooled().await.unwrap().unwrap();
            let ws = std::mem::size_of_val(&s.write_all(p));
            let rs = std::mem::size_of_val(&s.recv_pooled());
            eprintln!(
                "sizes: recv_pooled {rs} write_all(PooledBuf) {ws} stream {}",
                std::mem::size_of_val(&s)
            );
        }
        let before = heap();
        const N: usize = 1000;
        let mut held = Vec::new();
        for _ in 0..N {
            clients.push(std::net::TcpStream::connect(a).unwrap());
            let (s, _) = l.accept().await.unwrap();
            held.push(s);
        }
        let mid = heap();
        println!("streams only: {}", (mid - before) / N);
        let mode = std::env::var("MODE").unwrap_or_default();
        let mut first = true;
        for mut s in held {
            match mode.as_str() {
                "pending" => drop(corering::spawn(async move {
                    std::future::pending::<()>().await;
                    drop(s);
                })),
                "pad" => drop(corering::spawn(async move {
                    let pad = [1u8; 400];
                    std::future::pending::<()>().await;
                    drop(s);
                    std::hint::black_box(pad);
                })),
                "recv" => drop(corering::spawn(async move {
                    while let Ok(Some(_buf)) = s.recv_pooled().await {}
                })),
                _ => {
                    let task = async move {
                        while let Ok(Some(buf)) = s.recv_pooled().await {
                            if s.write_all(buf).await.0.is_err() {
                                return;
                            }
                        }
                    };
                    if first {
                        eprintln!("sizes: echo task {}", std::mem::size_of_val(&task));
                        first = false;
                    }
                    drop(corering::spawn(task))
                }
            }
        }
        // One small echo on each, as compare's idle case does.
        for c in &mut clients {
            std::io::Write::write_all(c, b"x").unwrap();
        }
        for _ in 0..20 {
            corering::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for c in &mut clients {
            let mut byte = [0];
            std::io::Read::read_exact(c, &mut byte).unwrap();
        }
        let after = heap();
        println!(
            "{backend}: heap bytes per idle connection: {}",
            (after - before) / N
        );
        drop(clients);
    });
}
