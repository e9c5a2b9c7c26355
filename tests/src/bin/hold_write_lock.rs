//! Holds the write lock of a SQLite database for a while, as another
//! process (a command, a backup) would: `hold_write_lock DB SECONDS`.
//! Prints `locked` once it holds the lock, then sleeps and rolls back.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(secs)) = (args.next(), args.next()) else {
        eprintln!("usage: hold_write_lock DB SECONDS");
        std::process::exit(2);
    };
    let secs: f64 = secs.parse().expect("SECONDS is a number");
    let conn = rusqlite::Connection::open(&db).expect("open the database");
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    println!("locked");
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    conn.execute_batch("ROLLBACK").expect("roll back");
}
