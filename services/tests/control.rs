//! The control protocol: every byte string a peer may send is decoded
//! into a request or an error response, never a panic; over a real
//! socket served by a booted system, malformed, oversized, unknown,
//! premature and wrong-version frames each get their error and the
//! system keeps serving.

use std::io::Write;
use std::path::Path;

use spartan_services::control::{
    self, Client, Decoded, ErrorKind, MAX_FRAME, PROTOCOL_VERSION, Request, Response, Session,
};
use spartan_services::server::{self, ControlSocket};
use spartan_services::system::{Program, System, SystemConfig};

fn samples() -> Vec<Request> {
    vec![
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
        Request::Run {
            program: Program::Vfs("a.wat".into()),
            args: vec!["1".into(), "-2".into()],
            name: Some("n".into()),
        },
        Request::Run {
            program: Program::Bytes {
                name: "x".into(),
                bytes: vec![0, 97, 115, 109],
            },
            args: vec![],
            name: None,
        },
        Request::Tasks,
        Request::Kill { task: 7 },
        Request::Checkpoint {
            task: 9,
            output: "/tmp/x".into(),
            options: Default::default(),
        },
        Request::Restore {
            image: "/tmp/x".into(),
            err_resume: true,
            timeout_ms: 5,
            missing: "hang-up".into(),
            duplicate: "replace".into(),
        },
        Request::Shutdown,
        Request::Screen {
            vc: 0,
            unless: Some(3),
        },
        Request::Key {
            vc: 1,
            key: 0x11_0000,
            modifiers: 0,
        },
    ]
}

#[test]
fn garbage_never_panics_the_session() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let encoded: Vec<Vec<u8>> = samples().iter().map(control::encode).collect();
    let mut decoded = 0;
    for i in 0..200_000 {
        let mut bytes = if i % 2 == 0 {
            encoded[(next() % encoded.len() as u64) as usize].clone()
        } else {
            (0..next() % 40).map(|_| next() as u8).collect()
        };
        for _ in 0..(next() % 4) {
            if bytes.is_empty() {
                break;
            }
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, next() as u8),
            }
        }
        let mut s = Session::default();
        if i % 3 != 0 {
            let hello = control::encode(&samples()[0]);
            assert!(matches!(s.decode(&hello), Decoded::Request(_)));
        }
        if let Decoded::Request(_) = s.decode(&bytes) {
            decoded += 1;
        }
    }
    assert!(
        decoded > 1000,
        "mutations of valid requests decode often: {decoded}"
    );
    for r in samples() {
        let mut s = Session::default();
        s.decode(&control::encode(&samples()[0]));
        if r != samples()[0] {
            assert_eq!(s.decode(&control::encode(&r)), Decoded::Request(r));
        }
    }
}

#[test]
fn the_session_names_what_is_wrong() {
    let kind = |d: Decoded| match d {
        Decoded::Reply(Response::Error { kind, .. }) => kind,
        other => panic!("{other:?}"),
    };
    let mut s = Session::default();
    assert_eq!(
        kind(s.decode(&control::encode(&Request::Tasks))),
        ErrorKind::Handshake
    );
    assert_eq!(
        kind(s.decode(&control::encode(&Request::Hello { version: 99 }))),
        ErrorKind::Version
    );
    s.decode(&control::encode(&Request::Hello {
        version: PROTOCOL_VERSION,
    }));
    assert_eq!(kind(s.decode(&[200, 1])), ErrorKind::Unknown);
    assert_eq!(kind(s.decode(&[4])), ErrorKind::Malformed);
    let mut trailing = control::encode(&Request::Tasks);
    trailing.push(0);
    assert_eq!(kind(s.decode(&trailing)), ErrorKind::Malformed);
    assert_eq!(
        kind(s.decode(&control::encode(&Request::Hello {
            version: PROTOCOL_VERSION
        }))),
        ErrorKind::Handshake
    );
}

/// Boots a simulated system serving `sock` on its own thread.
fn boot(root: &Path, sock: &Path) -> std::thread::JoinHandle<()> {
    let (root, sock) = (root.to_path_buf(), sock.to_path_buf());
    let socket = ControlSocket::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut cfg = SystemConfig::new(root);
        cfg.sim = Some(3);
        let sys = System::boot(&cfg).unwrap();
        server::serve(
            sys,
            socket,
            server::no_signals(),
            server::ServeOptions {
                sim: Some(3),
                log: false,
            },
        );
    })
}

fn raw(sock: &Path, frames: &[&[u8]]) -> Vec<Response> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    let mut out = Vec::new();
    for f in frames {
        if control::write_frame(&mut s, f).is_err() {
            break;
        }
        match control::read_frame(&mut s) {
            Ok(b) => out.push(postcard::from_bytes(&b).unwrap()),
            Err(_) => break,
        }
    }
    out
}

fn kind_of(r: &Response) -> ErrorKind {
    match r {
        Response::Error { kind, .. } => *kind,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_served_system_survives_bad_frames() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let server = boot(root.path(), &sock);
    let mode = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    // A second system on the same socket is refused.
    let e = ControlSocket::bind(&sock).err().unwrap();
    assert!(e.to_string().contains("already running"), "{e}");

    let hello = control::encode(&Request::Hello {
        version: PROTOCOL_VERSION,
    });
    // Oversized: an error, then the connection closes.
    {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(&(MAX_FRAME + 1).to_le_bytes()).unwrap();
        let r: Response = postcard::from_bytes(&control::read_frame(&mut s).unwrap()).unwrap();
        assert_eq!(kind_of(&r), ErrorKind::TooLarge);
        assert!(control::read_frame(&mut s).is_err());
    }
    let r = raw(&sock, &[&control::encode(&Request::Tasks), &hello]);
    assert_eq!(r.len(), 1, "closed after a request before the hello");
    assert_eq!(kind_of(&r[0]), ErrorKind::Handshake);
    let r = raw(
        &sock,
        &[&control::encode(&Request::Hello {
            version: PROTOCOL_VERSION + 1,
        })],
    );
    assert_eq!(kind_of(&r[0]), ErrorKind::Version);
    let r = raw(
        &sock,
        &[
            &hello,
            &[77, 0],
            &[1, 255, 255],
            &[],
            &control::encode(&Request::Tasks),
        ],
    );
    assert!(matches!(r[0], Response::Hello { .. }));
    assert_eq!(kind_of(&r[1]), ErrorKind::Unknown);
    assert_eq!(kind_of(&r[2]), ErrorKind::Malformed);
    assert_eq!(kind_of(&r[3]), ErrorKind::Malformed);
    assert!(matches!(&r[4], Response::Tasks { tasks } if tasks.len() == 5));
    // A truncated frame, then a hangup.
    {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(&[10, 0, 0, 0, 1, 2]).unwrap();
    }

    // The system still serves: bad requests are errors of their kind.
    let mut c = Client::connect(&sock).unwrap();
    let e = c.request(&Request::Kill { task: 1 }).unwrap_err();
    assert!(e.to_string().contains("system service"), "{e}");
    let e = c
        .request(&Request::Run {
            program: Program::Vfs("nope.wat".into()),
            args: vec![],
            name: None,
        })
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    assert!(matches!(
        c.request(&Request::Screen {
            vc: 0,
            unless: None
        }),
        Ok(Response::Screen(_))
    ));
    assert!(matches!(
        c.request(&Request::Shutdown),
        Ok(Response::ShuttingDown)
    ));
    server.join().unwrap();
    assert!(!sock.exists(), "the socket is removed at shutdown");
    let e = Client::connect(&sock).err().unwrap();
    assert!(e.to_string().contains("no system is running"), "{e}");
}
