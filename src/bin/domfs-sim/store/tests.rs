use super::*;

const D0: Caller = Caller { conn: 1, domid: 0 };
const G1: Caller = Caller { conn: 2, domid: 1 };

fn perms(s: &[&str]) -> Vec<Perm> {
    s.iter().map(|p| Perm::parse(p).unwrap()).collect()
}

#[test]
fn permissions_and_ownership() {
    let mut s = Store::new(Flavour::C);
    s.write(D0, 0, "/local/domain/1/name", b"g").unwrap();
    s.set_perms(D0, 0, "/local/domain/1", &perms(&["n0", "r1"]))
        .unwrap();
    s.set_perms(D0, 0, "/local/domain/1/name", &perms(&["n0", "r1"]))
        .unwrap();
    assert_eq!(s.read(G1, 0, "name").unwrap(), b"g");
    assert_eq!(s.write(G1, 0, "name", b"x"), Err(ErrName::Eacces));
    assert_eq!(s.read(G1, 0, "/local/domain/2/x"), Err(ErrName::Eacces));
    assert_eq!(s.read(G1, 0, "missing"), Err(ErrName::Enoent));
    s.mkdir(D0, 0, "/local/domain/1/data").unwrap();
    s.set_perms(D0, 0, "/local/domain/1/data", &perms(&["n1"]))
        .unwrap();
    s.write(G1, 0, "data/k", b"v").unwrap();
    assert_eq!(
        s.get_perms(D0, 0, "/local/domain/1/data/k").unwrap(),
        perms(&["n1"])
    );
    assert_eq!(
        s.set_perms(G1, 0, "data/k", &perms(&["n0"])),
        Err(ErrName::Eperm)
    );
}

#[test]
fn transactions_conflict() {
    let mut s = Store::new(Flavour::C);
    s.write(D0, 0, "/a", b"1").unwrap();
    let t = s.transaction_start(D0).unwrap();
    assert_eq!(s.read(D0, t, "/a").unwrap(), b"1");
    s.write(D0, t, "/a", b"2").unwrap();
    assert_eq!(s.read(D0, 0, "/a").unwrap(), b"1");
    s.write(D0, 0, "/a", b"3").unwrap();
    assert_eq!(s.transaction_end(D0, t, true), Err(ErrName::Eagain));
    let t = s.transaction_start(D0).unwrap();
    s.write(D0, t, "/a", b"4").unwrap();
    s.transaction_end(D0, t, true).unwrap();
    assert_eq!(s.read(D0, 0, "/a").unwrap(), b"4");
    assert_eq!(s.transaction_end(D0, t, true), Err(ErrName::Enoent));
}

#[test]
fn quotas_bind_guests_only() {
    let mut s = Store::new(Flavour::Ocaml);
    s.mkdir(D0, 0, "/local/domain/1").unwrap();
    s.set_perms(D0, 0, "/local/domain/1", &perms(&["n1"]))
        .unwrap();
    assert_eq!(s.write(G1, 0, "big", &[b'x'; 3000]), Err(ErrName::Equota));
    s.write(D0, 0, "/local/domain/1/big", &[b'x'; 3000])
        .unwrap();
}
