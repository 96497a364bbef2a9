//! Table tests of the security model: rights and their names, principals, the descriptor
//! codec, inheritance, SDDL (every accepted form and every rejection, and a format/parse
//! round trip), and the access-check matrix.

use hivelog_log::codec::Reader;
use proptest::prelude::*;

use super::check::CompiledAce;
use super::principals::{
    ADMINISTRATORS, AUTHENTICATED_USERS, CREATOR_OWNER, EVERYONE, USERS, check_principal,
};
use super::sddl::{self, Sddl};
use super::{
    ACES_MAX, Access, Ace, AceFlags, AceKind, CALLER_GROUPS_MAX, Caller, CompiledSd, Identity,
    PRINCIPAL_MAX_BYTES, PRINCIPALS_MAX, PrincipalId, Principals, Privileges, SDDL_MAX_BYTES,
    SECURITY_DESCRIPTOR_MAX_BYTES, SYSTEM, SecurityDescriptor, access_check, compile, identity,
    inherited, machine_default, user_home, users_default, with_explicit,
};
use crate::error::Error;

// ---- helpers ----

/// A descriptor from SDDL that names at least the owner and the DACL.
fn sd(text: &str) -> SecurityDescriptor {
    let parsed = sddl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let (protected, dacl) = parsed.dacl.expect("the SDDL names a DACL");
    SecurityDescriptor {
        owner: parsed.owner.expect("the SDDL names an owner"),
        group: parsed.group,
        protected,
        dacl,
    }
}

fn compiled(sd: &SecurityDescriptor, principals: &mut Principals) -> CompiledSd {
    compile(sd, principals).unwrap()
}

fn who(caller: &Caller, principals: &mut Principals) -> Identity {
    identity(caller, principals).unwrap()
}

fn check(text: &str, caller: &Caller, desired: Access) -> Result<Access, Access> {
    let mut principals = Principals::new();
    let sd = compiled(&sd(text), &mut principals);
    access_check(&sd, &who(caller, &mut principals), desired)
}

fn decode_all(buf: &[u8]) -> Result<SecurityDescriptor, hivelog_log::codec::Short> {
    let mut r = Reader::new(buf);
    let sd = SecurityDescriptor::decode(&mut r)?;
    r.finish("trailing bytes")?;
    Ok(sd)
}

fn encoded(sd: &SecurityDescriptor) -> Vec<u8> {
    let mut buf = Vec::new();
    sd.encode(&mut buf);
    assert_eq!(buf.len(), sd.encoded_len());
    buf
}

fn ace(kind: AceKind, flags: u8, mask: Access, principal: &str) -> Ace {
    Ace {
        kind,
        flags: AceFlags(flags),
        mask,
        principal: principal.to_string(),
    }
}

use AceKind::{Allow, Deny};

const CI: u8 = AceFlags::CONTAINER_INHERIT.0;
const OI: u8 = AceFlags::OBJECT_INHERIT.0;
const NP: u8 = AceFlags::NO_PROPAGATE_INHERIT.0;
const IO: u8 = AceFlags::INHERIT_ONLY.0;
const ID: u8 = AceFlags::INHERITED.0;

// ---- access ----

#[test]
fn access_values_are_windows_values() {
    let table = [
        (Access::KEY_QUERY_VALUE, 0x0001),
        (Access::KEY_SET_VALUE, 0x0002),
        (Access::KEY_CREATE_SUB_KEY, 0x0004),
        (Access::KEY_ENUMERATE_SUB_KEYS, 0x0008),
        (Access::KEY_NOTIFY, 0x0010),
        (Access::KEY_CREATE_LINK, 0x0020),
        (Access::DELETE, 0x0001_0000),
        (Access::READ_CONTROL, 0x0002_0000),
        (Access::WRITE_DAC, 0x0004_0000),
        (Access::WRITE_OWNER, 0x0008_0000),
        (Access::KEY_READ, 0x20019),
        (Access::KEY_WRITE, 0x20006),
        (Access::KEY_EXECUTE, 0x20019),
        (Access::KEY_ALL_ACCESS, 0xF003F),
        (Access::GENERIC_READ, 0x8000_0000),
        (Access::GENERIC_WRITE, 0x4000_0000),
        (Access::GENERIC_EXECUTE, 0x2000_0000),
        (Access::GENERIC_ALL, 0x1000_0000),
        (Access::MAXIMUM_ALLOWED, 0x0200_0000),
        (Access::VALID_MASK, 0xF20F_003F),
    ];
    for (access, value) in table {
        assert_eq!(access.0, value, "{access}");
    }
    let composed = Access::READ_CONTROL
        | Access::KEY_QUERY_VALUE
        | Access::KEY_ENUMERATE_SUB_KEYS
        | Access::KEY_NOTIFY;
    assert_eq!(composed, Access::KEY_READ);
    assert_eq!(
        Access::READ_CONTROL | Access::KEY_SET_VALUE | Access::KEY_CREATE_SUB_KEY,
        Access::KEY_WRITE
    );
}

#[test]
fn access_set_helpers() {
    let rw = Access::KEY_READ.union(Access::KEY_WRITE);
    assert!(rw.contains(Access::KEY_SET_VALUE));
    assert!(!Access::KEY_READ.contains(Access::KEY_WRITE));
    assert_eq!(rw.minus(Access::KEY_READ), Access(0x6));
    assert_eq!(Access::KEY_READ & Access::KEY_WRITE, Access::READ_CONTROL);
    assert!(Access::NONE.is_empty() && !Access::DELETE.is_empty());
    assert!(Access::KEY_READ.contains(Access::NONE));
}

#[test]
fn access_map_generic() {
    let table = [
        (Access::GENERIC_READ, Access::KEY_READ),
        (Access::GENERIC_WRITE, Access::KEY_WRITE),
        (Access::GENERIC_EXECUTE, Access::KEY_EXECUTE),
        (Access::GENERIC_ALL, Access::KEY_ALL_ACCESS),
        (
            Access::GENERIC_WRITE | Access::DELETE,
            Access::KEY_WRITE | Access::DELETE,
        ),
        (
            Access::GENERIC_READ | Access::GENERIC_WRITE,
            Access::KEY_READ | Access::KEY_WRITE,
        ),
        (Access::MAXIMUM_ALLOWED, Access::MAXIMUM_ALLOWED),
        (Access::KEY_SET_VALUE, Access::KEY_SET_VALUE),
        (Access::NONE, Access::NONE),
    ];
    for (from, to) in table {
        assert_eq!(from.map_generic(), to, "{from}");
    }
}

#[test]
fn access_display() {
    let table = [
        (Access::NONE, "no access"),
        (Access::KEY_READ, "KEY_READ"),
        (Access::KEY_WRITE, "KEY_WRITE"),
        (Access::KEY_ALL_ACCESS, "KEY_ALL_ACCESS"),
        (
            Access::KEY_SET_VALUE | Access::DELETE,
            "KEY_SET_VALUE | DELETE",
        ),
        (Access::KEY_READ | Access::KEY_WRITE, "KEY_READ | KEY_WRITE"),
        (Access::KEY_READ | Access::DELETE, "KEY_READ | DELETE"),
        (Access::READ_CONTROL, "READ_CONTROL"),
        (
            Access::KEY_QUERY_VALUE | Access::KEY_NOTIFY,
            "KEY_QUERY_VALUE | KEY_NOTIFY",
        ),
        (Access(0x100), "0x100"),
        (Access(0x8000_0100), "GENERIC_READ | 0x100"),
        (Access::MAXIMUM_ALLOWED, "MAXIMUM_ALLOWED"),
        (
            Access::KEY_ALL_ACCESS | Access::GENERIC_ALL,
            "KEY_ALL_ACCESS | GENERIC_ALL",
        ),
    ];
    for (access, text) in table {
        assert_eq!(access.to_string(), text);
    }
}

#[test]
fn access_parse() {
    let accepted = [
        ("KEY_READ", Access::KEY_READ),
        ("key_read", Access::KEY_READ),
        ("KEY_EXECUTE", Access::KEY_READ),
        (
            " KEY_SET_VALUE | DELETE ",
            Access::KEY_SET_VALUE | Access::DELETE,
        ),
        (
            "KEY_SET_VALUE|DELETE",
            Access::KEY_SET_VALUE | Access::DELETE,
        ),
        ("0x20019", Access::KEY_READ),
        ("0XF003F", Access::KEY_ALL_ACCESS),
        ("KEY_READ | 0x100", Access(0x20119)),
        ("GENERIC_ALL", Access::GENERIC_ALL),
        ("MAXIMUM_ALLOWED", Access::MAXIMUM_ALLOWED),
        ("WRITE_OWNER|WRITE_DAC", Access(0xC0000)),
        ("no access", Access::NONE),
    ];
    for (text, access) in accepted {
        assert_eq!(Access::parse(text), Some(access), "{text:?}");
    }
    let refused = [
        "",
        "KEY_BOGUS",
        "KEY_READ|",
        "|",
        "0x",
        "0xZZ",
        "0x1FFFFFFFF",
        "20019",
        "KEY READ",
    ];
    for text in refused {
        assert_eq!(Access::parse(text), None, "{text:?}");
    }
}

// ---- privileges and callers ----

#[test]
fn privileges_display_parse_and_name() {
    let table = [
        (Privileges::NONE, "no privileges"),
        (Privileges::BACKUP, "SeBackupPrivilege"),
        (Privileges::RESTORE, "SeRestorePrivilege"),
        (Privileges::TAKE_OWNERSHIP, "SeTakeOwnershipPrivilege"),
        (Privileges::SECURITY, "SeSecurityPrivilege"),
        (Privileges::IMPERSONATE, "SeImpersonatePrivilege"),
        (
            Privileges::BACKUP.union(Privileges::RESTORE),
            "SeBackupPrivilege | SeRestorePrivilege",
        ),
        (
            Privileges::ALL,
            "SeBackupPrivilege | SeRestorePrivilege | SeTakeOwnershipPrivilege | \
             SeSecurityPrivilege | SeImpersonatePrivilege",
        ),
        (Privileges(0x40), "0x40"),
    ];
    for (privileges, text) in table {
        assert_eq!(privileges.to_string(), text);
        assert_eq!(Privileges::parse(text), Some(privileges), "{text}");
    }
    for bits in 0..=u8::MAX {
        let p = Privileges(bits);
        assert_eq!(Privileges::parse(&p.to_string()), Some(p));
    }
    assert_eq!(
        Privileges::parse("sebackupprivilege"),
        Some(Privileges::BACKUP)
    );
    for refused in ["", "SeFooPrivilege", "SeBackupPrivilege|", "0x100"] {
        assert_eq!(Privileges::parse(refused), None, "{refused:?}");
    }
    assert_eq!(
        Privileges::TAKE_OWNERSHIP.name(),
        "SeTakeOwnershipPrivilege"
    );
    assert_eq!(Privileges::NONE.name(), "no privileges");
    assert!(Privileges::ALL.contains(Privileges::SECURITY));
    assert!(!Privileges::BACKUP.contains(Privileges::RESTORE));
}

#[test]
fn callers() {
    let system = Caller::system();
    assert_eq!(system.principal, SYSTEM);
    assert_eq!(system.groups, [EVERYONE, AUTHENTICATED_USERS]);
    assert_eq!(system.privileges, Privileges::ALL);
    let alice = Caller::user("alice")
        .with_group("editors")
        .with_privileges(Privileges::BACKUP);
    assert_eq!(alice.principal, "alice");
    assert_eq!(
        alice.groups,
        [EVERYONE, AUTHENTICATED_USERS, USERS, "editors"]
    );
    assert_eq!(alice.privileges, Privileges::BACKUP);
    assert!(alice.validate().is_ok());

    assert!(matches!(
        Caller::user("a b").validate(),
        Err(Error::InvalidPrincipal { .. })
    ));
    assert!(matches!(
        Caller::user("alice").with_group("S-1-5").validate(),
        Err(Error::InvalidPrincipal { .. })
    ));
    let mut crowded = Caller::user("alice");
    crowded.groups = (0..=CALLER_GROUPS_MAX).map(|i| format!("g{i}")).collect();
    assert!(matches!(
        crowded.validate(),
        Err(Error::TooManyGroups {
            max: CALLER_GROUPS_MAX,
            ..
        })
    ));
    let mut principals = Principals::new();
    assert!(identity(&crowded, &mut principals).is_err());
}

// ---- principals ----

#[test]
fn principals_accepted() {
    let long = "a".repeat(PRINCIPAL_MAX_BYTES);
    let accepted = [
        "alice",
        "SY",
        "S-1-5-18",
        "S-1-0-0",
        "S-1-5-21-3623811015-3361044348-30300820-1013",
        "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15",
        "S-1-281474976710655-4294967295",
        "s-1-5",
        "x-S-1",
        "Größe",
        "dom.user@example|x",
        &long,
    ];
    for p in accepted {
        assert_eq!(check_principal(p).ok(), Some(()), "{p:?}");
    }
}

#[test]
fn principals_refused() {
    let refused = [
        ("", "empty"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\u{7}", "control"),
        ("a\u{a0}b", "whitespace"),
        ("a;b", ";"),
        ("a(b", ";"),
        ("a)b", ";"),
        ("a:b", ";"),
        (r"dom\user", ";"),
        ("S-", "S-1-<authority>"),
        ("S-1", "S-1-<authority>"),
        ("S-1-5", "S-1-<authority>"),
        ("S-1-5-", "S-1-<authority>"),
        ("S-1-5--1", "S-1-<authority>"),
        ("S-1-x-1", "S-1-<authority>"),
        ("S-1-5-+1", "S-1-<authority>"),
        ("S-2-5-18", "revision"),
        ("S-1-5-018", "leading zeros"),
        ("S-01-5-18", "leading zeros"),
        ("S-1-281474976710656-1", "48 bits"),
        ("S-1-5-4294967296", "32 bits"),
        ("S-1-5-99999999999999999999999", "S-1-<authority>"),
        ("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "at most 15"),
    ];
    for (p, reason) in refused {
        match check_principal(p) {
            Err(Error::InvalidPrincipal {
                principal,
                reason: got,
            }) => {
                assert_eq!(principal, p);
                assert!(got.contains(reason), "{p:?}: {got}");
            }
            other => panic!("{p:?}: {other:?}"),
        }
    }
    let long = "a".repeat(PRINCIPAL_MAX_BYTES + 1);
    let err = check_principal(&long).unwrap_err();
    assert!(matches!(
        err,
        Error::PrincipalTooLong {
            len: 257,
            max: 256,
            ..
        }
    ));
    assert!(err.to_string().contains("PRINCIPAL_MAX_BYTES"), "{err}");
}

#[test]
fn aliases_map_both_ways() {
    use super::principals::{alias_to_sid, sid_to_alias};
    let table = [
        ("SY", "S-1-5-18"),
        ("BA", "S-1-5-32-544"),
        ("BU", "S-1-5-32-545"),
        ("BG", "S-1-5-32-546"),
        ("PU", "S-1-5-32-547"),
        ("WD", "S-1-1-0"),
        ("CO", "S-1-3-0"),
        ("CG", "S-1-3-1"),
        ("AU", "S-1-5-11"),
        ("AN", "S-1-5-7"),
        ("LS", "S-1-5-19"),
        ("NS", "S-1-5-20"),
        ("IU", "S-1-5-4"),
        ("SU", "S-1-5-6"),
        ("RC", "S-1-5-12"),
        ("OW", "S-1-3-4"),
    ];
    for (alias, sid) in table {
        assert_eq!(alias_to_sid(alias), Some(sid));
        assert_eq!(sid_to_alias(sid), Some(alias));
    }
    assert_eq!(alias_to_sid("sy"), None, "aliases are upper case");
    assert_eq!(alias_to_sid("alice"), None);
    assert_eq!(sid_to_alias("S-1-5-21-1-2-3"), None);
    let consts = [
        (SYSTEM, "SY"),
        (ADMINISTRATORS, "BA"),
        (USERS, "BU"),
        (EVERYONE, "WD"),
        (CREATOR_OWNER, "CO"),
        (AUTHENTICATED_USERS, "AU"),
    ];
    for (sid, alias) in consts {
        assert_eq!(alias_to_sid(alias), Some(sid));
    }
}

#[test]
fn interner_ids_are_dense_and_stable() {
    let mut principals = Principals::new();
    let alice = principals.intern("alice").unwrap();
    let bob = principals.intern("bob").unwrap();
    let again: PrincipalId = principals.intern("alice").unwrap();
    assert_eq!(alice, again);
    assert_ne!(alice, bob);
    assert!(alice < bob, "dense from 0, in order of interning");
    assert_eq!(principals.get("bob"), Some(bob));
    assert_eq!(principals.get("carol"), None);
    assert_eq!(principals.name(alice), "alice");
    assert_eq!(principals.name(bob), "bob");
}

#[test]
fn interner_refuses_more_than_principals_max() {
    let mut principals = Principals::new();
    for i in 0..PRINCIPALS_MAX {
        principals.intern(&format!("p{i}")).unwrap();
    }
    assert!(
        principals.intern("p0").is_ok(),
        "known principals still intern"
    );
    let err = principals.intern("one-too-many").unwrap_err();
    assert!(matches!(
        err,
        Error::TooManyPrincipals {
            max: PRINCIPALS_MAX
        }
    ));
    assert!(err.to_string().contains("PRINCIPALS_MAX"), "{err}");
}

// ---- descriptor codec and validation ----

fn sample_descriptors() -> Vec<SecurityDescriptor> {
    vec![
        machine_default(),
        users_default(),
        user_home("alice"),
        SecurityDescriptor {
            owner: "S-1-5-21-1-2-3".to_string(),
            group: Some(ADMINISTRATORS.to_string()),
            protected: true,
            dacl: vec![
                ace(Deny, CI | OI | NP | IO | ID, Access::KEY_SET_VALUE, "Größe"),
                ace(Allow, 0, Access::NONE, EVERYONE),
                ace(Allow, CI, Access::KEY_ALL_ACCESS, "bob"),
            ],
        },
        SecurityDescriptor {
            owner: "alice".to_string(),
            group: None,
            protected: false,
            dacl: Vec::new(),
        },
    ]
}

#[test]
fn descriptor_codec_round_trips() {
    for sd in sample_descriptors() {
        assert_eq!(decode_all(&encoded(&sd)), Ok(sd));
    }
}

#[test]
fn descriptor_codec_refuses_every_truncation_and_trailing_bytes() {
    for sd in sample_descriptors() {
        let mut buf = encoded(&sd);
        for cut in 0..buf.len() {
            let mut r = Reader::new(&buf[..cut]);
            assert!(
                SecurityDescriptor::decode(&mut r).is_err(),
                "{sd:?} cut at {cut}"
            );
        }
        buf.push(0);
        assert!(decode_all(&buf).is_err(), "{sd:?} with a trailing byte");
    }
}

#[test]
fn descriptor_codec_refuses_bad_bytes() {
    // owner "alice" and one ACE for "bob": version 0, flags 1, owner 2..9, count 9..11,
    // kind 11, flags 12, mask 13..17, principal length 17..19, principal 19..22.
    let sd = SecurityDescriptor {
        owner: "alice".to_string(),
        group: None,
        protected: false,
        dacl: vec![ace(Allow, CI, Access::KEY_READ, "bob")],
    };
    let good = encoded(&sd);
    assert_eq!(good.len(), 22);
    let mask = |m: u32| (13..17).zip(m.to_le_bytes()).collect::<Vec<_>>();
    let table = vec![
        (
            "version",
            vec![(0, 2)],
            "unsupported security descriptor version",
        ),
        (
            "flags",
            vec![(1, 0x04)],
            "unknown security descriptor flags",
        ),
        ("owner not UTF-8", vec![(4, 0xff)], "descriptor owner"),
        ("owner with a space", vec![(4, b' ')], "invalid principal"),
        (
            "count beyond ACES_MAX",
            vec![(9, 0x01), (10, 0x04)],
            "more than ACES_MAX entries in a DACL",
        ),
        ("kind", vec![(11, 2)], "unknown ACE kind"),
        ("ACE flags", vec![(12, 0x20)], "unknown ACE flags"),
        (
            "mask bit 0x40",
            mask(0x40),
            "ACE mask outside KEY_ALL_ACCESS",
        ),
        (
            "generic mask",
            mask(0x8000_0000),
            "ACE mask outside KEY_ALL_ACCESS",
        ),
        (
            "maximum allowed",
            mask(0x0200_0000),
            "ACE mask outside KEY_ALL_ACCESS",
        ),
        (
            "principal with a paren",
            vec![(19, b'(')],
            "invalid principal",
        ),
        ("principal length", vec![(17, 9)], "ACE principal"),
    ];
    for (what, edits, error) in table {
        let mut buf = good.clone();
        for (at, byte) in edits {
            buf[at] = byte;
        }
        assert_eq!(
            decode_all(&buf),
            Err(hivelog_log::codec::Short(error)),
            "{what}"
        );
    }
    let mut empty_owner = Vec::new();
    SecurityDescriptor {
        owner: "x".to_string(),
        ..sd.clone()
    }
    .encode(&mut empty_owner);
    empty_owner.splice(2..5, [0, 0]);
    assert_eq!(
        decode_all(&empty_owner),
        Err(hivelog_log::codec::Short("invalid principal"))
    );
}

#[test]
fn validate_refuses_what_cannot_be_stored() {
    let base = user_home("alice");
    let with_ace = |a: Ace| SecurityDescriptor {
        dacl: vec![a],
        ..base.clone()
    };
    let name = |i: usize| format!("{i:0>256}");
    type Expected = fn(&Error) -> bool;
    let table: Vec<(&str, SecurityDescriptor, Expected)> = vec![
        (
            "empty owner",
            SecurityDescriptor {
                owner: String::new(),
                ..base.clone()
            },
            |e| matches!(e, Error::InvalidPrincipal { .. }),
        ),
        (
            "bad group",
            SecurityDescriptor {
                group: Some("S-1-5-".to_string()),
                ..base.clone()
            },
            |e| matches!(e, Error::InvalidPrincipal { .. }),
        ),
        (
            "bad ACE principal",
            with_ace(ace(Allow, 0, Access::KEY_READ, "a;b")),
            |e| matches!(e, Error::InvalidPrincipal { .. }),
        ),
        (
            "generic mask",
            with_ace(ace(Allow, 0, Access::GENERIC_READ, "bob")),
            |e| {
                matches!(
                    e,
                    Error::BadAccessMask {
                        mask: 0x8000_0000,
                        ..
                    }
                )
            },
        ),
        (
            "unknown flag",
            with_ace(ace(Allow, 0x20, Access::KEY_READ, "bob")),
            |e| matches!(e, Error::BadAceFlags { flags: 0x20, .. }),
        ),
        (
            "too many ACEs",
            SecurityDescriptor {
                dacl: vec![ace(Allow, 0, Access::KEY_READ, "bob"); ACES_MAX + 1],
                ..base.clone()
            },
            |e| {
                matches!(
                    e,
                    Error::TooManyAces {
                        count: 1025,
                        max: ACES_MAX
                    }
                )
            },
        ),
        (
            "too large",
            SecurityDescriptor {
                dacl: (0..ACES_MAX)
                    .map(|i| ace(Allow, 0, Access::KEY_READ, &name(i)))
                    .collect(),
                ..base.clone()
            },
            |e| {
                matches!(
                    e,
                    Error::DescriptorTooLarge {
                        max: SECURITY_DESCRIPTOR_MAX_BYTES,
                        ..
                    }
                )
            },
        ),
    ];
    for (what, sd, expected) in table {
        let err = sd.validate().unwrap_err();
        assert!(expected(&err), "{what}: {err}");
        let mut principals = Principals::new();
        assert!(compile(&sd, &mut principals).is_err(), "{what}");
    }
    let most = SecurityDescriptor {
        dacl: vec![ace(Allow, 0x1f, Access::KEY_ALL_ACCESS, "bob"); ACES_MAX],
        ..base
    };
    assert_eq!(most.validate().ok(), Some(()));
}

// ---- inheritance ----

#[test]
fn inheritance_rules() {
    // (parent, creator, the child's SDDL)
    let table = [
        (
            "CI entries propagate, keeping CI and OI, INHERITED set",
            "O:SYG:BAD:(A;CI;KA;;;SY)(A;OICI;KR;;;BU)",
            "alice",
            "O:aliceG:BAD:(A;CIID;KA;;;SY)(A;OICIID;KR;;;BU)",
        ),
        (
            "entries without CI stay (OI alone means nothing for keys)",
            "O:SYD:(A;;KA;;;SY)(A;OI;KR;;;BU)(A;OIIO;KR;;;WD)(A;CI;KW;;;bob)",
            "alice",
            "O:aliceD:(A;CIID;KW;;;bob)",
        ),
        (
            "INHERIT_ONLY is cleared on the child",
            "O:SYD:(A;CIIO;KR;;;bob)(D;OICIIO;SD;;;carol)",
            "alice",
            "O:aliceD:(A;CIID;KR;;;bob)(D;OICIID;SD;;;carol)",
        ),
        (
            "NP applies to the child and stops there",
            "O:SYD:(A;CINP;KR;;;bob)(A;CINPIO;KW;;;carol)",
            "alice",
            "O:aliceD:(A;ID;KR;;;bob)(A;ID;KW;;;carol)",
        ),
        (
            "CREATOR OWNER becomes the creator, and stays inheritable",
            "O:SYD:(A;CIIO;KA;;;CO)(A;OICIIO;KR;;;CO)",
            "alice",
            "O:aliceD:(A;ID;KA;;;alice)(A;CIIOID;KA;;;CO)(A;ID;KR;;;alice)(A;OICIIOID;KR;;;CO)",
        ),
        (
            "CREATOR OWNER with NP: the creator only",
            "O:SYD:(A;CINPIO;KA;;;CO)",
            "S-1-5-21-7",
            "O:S-1-5-21-7D:(A;ID;KA;;;S-1-5-21-7)",
        ),
        (
            "order and inherited entries are kept",
            "O:SYD:(D;CIID;DC;;;bob)(A;CI;KA;;;SY)(A;CIID;KR;;;WD)",
            "alice",
            "O:aliceD:(D;CIID;DC;;;bob)(A;CIID;KA;;;SY)(A;CIID;KR;;;WD)",
        ),
        (
            "a protected parent still hands its entries down",
            "O:SYD:P(A;CI;KA;;;SY)",
            "alice",
            "O:aliceD:(A;CIID;KA;;;SY)",
        ),
    ];
    for (what, parent, creator, child) in table {
        let got = inherited(&sd(parent), creator);
        assert_eq!(sddl::format(&got), child, "{what}");
        assert_eq!(got.validate().ok(), Some(()), "{what}");
    }
}

#[test]
fn inheritance_over_generations() {
    let root = machine_default();
    let child = inherited(&root, "alice");
    let grandchild = inherited(&child, "bob");
    assert_eq!(
        sddl::format(&child),
        "O:aliceD:(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;ID;KA;;;alice)\
         (A;CIIOID;KA;;;CO)"
    );
    assert_eq!(
        sddl::format(&grandchild),
        "O:bobD:(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;ID;KA;;;bob)\
         (A;CIIOID;KA;;;CO)",
        "alice's own entry does not reach bob's key; CREATOR OWNER does"
    );
}

#[test]
fn explicit_descriptors() {
    let parent = sd("O:SYG:BAD:(A;CI;KA;;;SY)(A;CIIO;KA;;;CO)(A;;KR;;;BU)");
    let table = [
        (
            "own entries first, INHERITED cleared, then the parent's",
            "O:bobD:(D;ID;DC;;;carol)(A;CI;KR;;;bob)",
            "O:bobG:BAD:(D;;DC;;;carol)(A;CI;KR;;;bob)(A;CIID;KA;;;SY)(A;ID;KA;;;alice)\
             (A;CIIOID;KA;;;CO)",
        ),
        (
            "protected: nothing inherited",
            "O:bobG:BUD:P(A;CI;KR;;;bob)",
            "O:bobG:BUD:P(A;CI;KR;;;bob)",
        ),
        (
            "an empty explicit DACL still inherits",
            "O:bobD:",
            "O:bobG:BAD:(A;CIID;KA;;;SY)(A;ID;KA;;;alice)(A;CIIOID;KA;;;CO)",
        ),
    ];
    for (what, explicit, child) in table {
        let got = with_explicit(sd(explicit), &parent, "alice");
        assert_eq!(sddl::format(&got), child, "{what}");
    }
}

#[test]
fn defaults() {
    assert_eq!(
        sddl::format(&machine_default()),
        "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;KA;;;CO)"
    );
    assert_eq!(
        sddl::format(&users_default()),
        "O:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;;KR;;;BU)"
    );
    assert_eq!(
        sddl::format(&user_home("alice")),
        "O:aliceD:P(A;CI;KA;;;alice)(A;CI;KA;;;SY)(A;CI;KA;;;BA)"
    );
    for sd in [machine_default(), users_default(), user_home("S-1-5-21-9")] {
        assert_eq!(sd.validate().ok(), Some(()), "{sd:?}");
    }
}

#[test]
fn users_cannot_read_each_others_keys() {
    let users = users_default();
    let home = user_home("alice");
    let settings = inherited(&home, "alice");
    let mut principals = Principals::new();
    let alice = who(&Caller::user("alice"), &mut principals);
    let bob = who(&Caller::user("bob"), &mut principals);
    let admin = who(&Caller::user("carol").with_group("BA"), &mut principals);
    let users = compiled(&users, &mut principals);
    let settings = compiled(&settings, &mut principals);
    assert_eq!(
        access_check(&users, &bob, Access::KEY_READ),
        Ok(Access::KEY_READ),
        "users list the hive"
    );
    assert_eq!(
        access_check(&users, &bob, Access::KEY_CREATE_SUB_KEY),
        Err(Access::KEY_CREATE_SUB_KEY)
    );
    assert_eq!(
        access_check(&settings, &alice, Access::KEY_ALL_ACCESS),
        Ok(Access::KEY_ALL_ACCESS)
    );
    assert_eq!(
        access_check(&settings, &bob, Access::KEY_READ),
        Err(Access::KEY_READ)
    );
    assert_eq!(
        access_check(&settings, &admin, Access::KEY_WRITE),
        Ok(Access::KEY_WRITE)
    );
}

// ---- SDDL ----

#[test]
fn sddl_accepted_forms() {
    let alice_reads = ace(Allow, 0, Access::KEY_READ, "alice");
    let table: Vec<(&str, Sddl)> = vec![
        ("", Sddl::default()),
        (
            "O:alice",
            Sddl {
                owner: Some("alice".into()),
                ..Sddl::default()
            },
        ),
        (
            "O:SY",
            Sddl {
                owner: Some(SYSTEM.into()),
                ..Sddl::default()
            },
        ),
        (
            "G:S-1-5-32-544",
            Sddl {
                group: Some(ADMINISTRATORS.into()),
                ..Sddl::default()
            },
        ),
        (
            "D:",
            Sddl {
                dacl: Some((false, vec![])),
                ..Sddl::default()
            },
        ),
        (
            "D:P",
            Sddl {
                dacl: Some((true, vec![])),
                ..Sddl::default()
            },
        ),
        (
            "D:PAI(A;;KR;;;alice)",
            Sddl {
                dacl: Some((true, vec![alice_reads.clone()])),
                ..Sddl::default()
            },
        ),
        (
            "D:ARAI(A;;KR;;;alice)",
            Sddl {
                dacl: Some((false, vec![alice_reads.clone()])),
                ..Sddl::default()
            },
        ),
        (
            " O: SY G:BA D:P ( A ; CI ; KA ; ; ; SY ) (D;;SD;;;WD) ",
            Sddl {
                owner: Some(SYSTEM.into()),
                group: Some(ADMINISTRATORS.into()),
                dacl: Some((
                    true,
                    vec![
                        ace(Allow, CI, Access::KEY_ALL_ACCESS, SYSTEM),
                        ace(Deny, 0, Access::DELETE, EVERYONE),
                    ],
                )),
            },
        ),
        (
            "O:aliceG:bobD:(A;;KR;;;alice)",
            Sddl {
                owner: Some("alice".into()),
                group: Some("bob".into()),
                dacl: Some((false, vec![alice_reads.clone()])),
            },
        ),
        (
            "O:GregG:DD:",
            Sddl {
                owner: Some("Greg".into()),
                group: Some("D".into()),
                dacl: Some((false, vec![])),
            },
        ),
        (
            "O:S-1-5-21-1-2D:(A;;KA;;;S-1-5-21-1-2)",
            Sddl {
                owner: Some("S-1-5-21-1-2".into()),
                dacl: Some((
                    false,
                    vec![ace(Allow, 0, Access::KEY_ALL_ACCESS, "S-1-5-21-1-2")],
                )),
                ..Sddl::default()
            },
        ),
    ];
    for (text, expected) in table {
        assert_eq!(sddl::parse(text).ok(), Some(expected), "{text:?}");
    }
}

#[test]
fn sddl_ace_fields() {
    let ace_of = |text: &str| {
        let parsed = sddl::parse(&format!("D:{text}")).unwrap_or_else(|e| panic!("{e}"));
        let (_, mut dacl) = parsed.dacl.unwrap();
        assert_eq!(dacl.len(), 1);
        dacl.remove(0)
    };
    let flags = [
        ("", 0),
        ("CI", CI),
        ("OI", OI),
        ("NP", NP),
        ("IO", IO),
        ("ID", ID),
        ("OICI", OI | CI),
        ("IDIOCINPOI", CI | OI | NP | IO | ID),
    ];
    for (text, bits) in flags {
        assert_eq!(
            ace_of(&format!("(A;{text};KA;;;SY)")).flags,
            AceFlags(bits),
            "{text}"
        );
    }
    let rights = [
        ("KA", Access::KEY_ALL_ACCESS),
        ("KR", Access::KEY_READ),
        ("KW", Access::KEY_WRITE),
        ("KX", Access::KEY_EXECUTE),
        ("GA", Access::KEY_ALL_ACCESS),
        ("GR", Access::KEY_READ),
        ("GW", Access::KEY_WRITE),
        ("GX", Access::KEY_EXECUTE),
        ("RC", Access::READ_CONTROL),
        ("SD", Access::DELETE),
        ("WD", Access::WRITE_DAC),
        ("WO", Access::WRITE_OWNER),
        ("CC", Access::KEY_QUERY_VALUE),
        ("DC", Access::KEY_SET_VALUE),
        ("LC", Access::KEY_CREATE_SUB_KEY),
        ("SW", Access::KEY_ENUMERATE_SUB_KEYS),
        ("RP", Access::KEY_NOTIFY),
        ("WP", Access::KEY_CREATE_LINK),
        ("DCSD", Access::KEY_SET_VALUE | Access::DELETE),
        ("KRKW", Access::KEY_READ | Access::KEY_WRITE),
        ("GRSD", Access::KEY_READ | Access::DELETE),
        ("0x20019", Access::KEY_READ),
        ("0XF003F", Access::KEY_ALL_ACCESS),
        ("0x80000000", Access::KEY_READ),
        ("131097", Access::KEY_READ),
        ("0", Access::NONE),
    ];
    for (text, mask) in rights {
        assert_eq!(ace_of(&format!("(A;;{text};;;SY)")).mask, mask, "{text}");
    }
    let accounts = [
        ("SY", SYSTEM),
        ("BA", ADMINISTRATORS),
        ("CO", CREATOR_OWNER),
        ("S-1-5-21-1", "S-1-5-21-1"),
        ("alice", "alice"),
        ("sy", "sy"),
    ];
    for (text, principal) in accounts {
        assert_eq!(ace_of(&format!("(D;;KA;;;{text})")).principal, principal);
    }
    assert_eq!(ace_of("(D;;KA;;;SY)").kind, Deny);
    assert_eq!(ace_of("(A;;KA;;;SY)").kind, Allow);
}

#[test]
fn sddl_rejections() {
    let too_long = format!("O:{}", "a".repeat(SDDL_MAX_BYTES));
    let too_many = format!("D:{}", "(A;;KA;;;SY)".repeat(ACES_MAX + 1));
    let sixteen_subs = "D:(A;;KA;;;S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16)";
    // (text, byte offset, what the reason says)
    let table: Vec<(&str, usize, &str)> = vec![
        (
            "O:SYD:(X;;KA;;;SY)",
            7,
            r#"unknown ACE type "X" (expected A or D)"#,
        ),
        ("D:(OA;;KA;;;SY)", 3, r#"unknown ACE type "OA""#),
        ("D:(AU;;KA;;;SY)", 3, r#"unknown ACE type "AU""#),
        ("D:(;;KA;;;SY)", 3, r#"unknown ACE type """#),
        ("D:(A;XX;KA;;;SY)", 5, r#"unknown ACE flag "XX""#),
        ("D:(A;CIC;KA;;;SY)", 7, r#"unknown ACE flag "C""#),
        ("D:(A;ci;KA;;;SY)", 5, r#"unknown ACE flag "ci""#),
        ("D:(A;Cé;KA;;;SY)", 5, r#"unknown ACE flag "Cé""#),
        ("D:(A;CICI;KA;;;SY)", 7, r#"duplicate ACE flag "CI""#),
        ("D:(A;;KZ;;;SY)", 6, r#"unknown rights code "KZ""#),
        ("D:(A;;KAK;;;SY)", 8, r#"unknown rights code "K""#),
        ("D:(A;;;;;SY)", 6, "expected rights"),
        ("D:(A;;0xZZ;;;SY)", 6, r#"bad hex rights "0xZZ""#),
        ("D:(A;;0x;;;SY)", 6, "bad hex rights"),
        ("D:(A;;0x100000;;;SY)", 6, "outside KEY_ALL_ACCESS"),
        ("D:(A;;0x2000000;;;SY)", 6, "outside KEY_ALL_ACCESS"),
        ("D:(A;;99999999999;;;SY)", 6, "do not fit in 32 bits"),
        (
            "D:(A;;KA;abc;;SY)",
            9,
            r#"object GUID "abc" is not supported"#,
        ),
        ("D:(A;;KA;;abc;SY)", 10, "is not supported"),
        ("D:(A;;KA;;;S-1-5)", 11, "bad account: invalid principal"),
        ("D:(A;;KA;;;S-2-5-18)", 11, "revision"),
        ("D:(A;;KA;;;S-1-5-018)", 11, "leading zeros"),
        (sixteen_subs, 11, "at most 15 sub-authorities"),
        ("D:(A;;KA;;;a:b)", 11, "bad account"),
        ("D:(A;;KA;;;)", 11, "expected an account"),
        ("D:(A;;KA;;;SY", 2, "missing its closing parenthesis"),
        (
            "D:(A;;KA;;;SY(A;;KA;;;BA)",
            2,
            "missing its closing parenthesis",
        ),
        ("D:(A;;KA;;SY)", 3, "ACE has 5 fields; expected 6"),
        ("D:(A;;KA;;;SY;)", 3, "ACE has 7 fields"),
        ("D:PP(A;;KA;;;SY)", 3, r#"duplicate DACL flag "P""#),
        ("D:PAIAI", 5, r#"duplicate DACL flag "AI""#),
        ("D:X", 2, "unknown DACL flag 'X' (expected P, AI or AR)"),
        (
            "G:BAO:SY",
            4,
            "part O: after G: (parts come in the order O:, G:, D:)",
        ),
        ("D:O:SY", 2, "part O: after D:"),
        ("D:(A;;KA;;;SY)G:BA", 14, "part G: after D:"),
        ("O:SYO:BA", 4, "duplicate part O:"),
        ("D:D:", 2, "duplicate part D:"),
        ("O:SYD:S:", 6, "a SACL (S:) is not supported"),
        ("X:SY", 0, "unexpected 'X': expected O:, G: or D:"),
        ("O:SY junk", 5, "unexpected 'j': expected O:, G: or D:"),
        (
            "O:SYD:(A;;KA;;;SY)junk",
            18,
            "unexpected 'j': expected an ACE in parentheses",
        ),
        ("O:", 2, "expected an account after O:"),
        ("O:G:BA", 2, "expected an account after O:"),
        ("O:a;b", 2, "bad account"),
        (&too_long, SDDL_MAX_BYTES, "SDDL_MAX_BYTES is 65536"),
        (
            &too_many,
            2 + ACES_MAX * 12,
            "more than ACES_MAX (1024) ACEs",
        ),
    ];
    for (text, at, reason) in table {
        match sddl::parse(text) {
            Err(Error::BadSddl {
                at: got_at,
                reason: got,
                ..
            }) => {
                assert!(got.contains(reason), "{text:?}: {got}");
                assert_eq!(got_at, at, "{text:?}: {got}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn sddl_error_says_where_and_what() {
    let err = sddl::parse("O:SYD:(X;;KA;;;SY)").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid SDDL "O:SYD:(X;;KA;;;SY)" at byte 7: unknown ACE type "X" (expected A or D)"#
    );
    let long = format!("D:({})", "x".repeat(100));
    let Error::BadSddl { sddl, .. } = sddl::parse(&long).unwrap_err() else {
        panic!("not BadSddl");
    };
    assert_eq!(
        sddl.chars().count(),
        65,
        "clipped to 64 characters and an ellipsis"
    );
}

#[test]
fn sddl_format_is_canonical() {
    let owned = |dacl: Vec<Ace>| SecurityDescriptor {
        owner: ADMINISTRATORS.to_string(),
        group: Some("S-1-5-21-5".to_string()),
        protected: false,
        dacl,
    };
    let table = [
        (owned(vec![]), "O:BAG:S-1-5-21-5D:"),
        (
            owned(vec![ace(
                Allow,
                ID | IO | NP | CI | OI,
                Access::KEY_READ,
                "bob",
            )]),
            "O:BAG:S-1-5-21-5D:(A;OICINPIOID;KR;;;bob)",
        ),
        (
            owned(vec![ace(Deny, 0, Access::KEY_WRITE, "S-1-5-32-546")]),
            "O:BAG:S-1-5-21-5D:(D;;KW;;;BG)",
        ),
        (
            owned(vec![ace(
                Allow,
                0,
                Access::KEY_READ | Access::DELETE,
                "bob",
            )]),
            "O:BAG:S-1-5-21-5D:(A;;CCSWRPSDRC;;;bob)",
        ),
        (
            owned(vec![ace(Allow, 0, Access(0xF003E), "bob")]),
            "O:BAG:S-1-5-21-5D:(A;;DCLCSWRPWPSDRCWDWO;;;bob)",
        ),
        (
            owned(vec![ace(Allow, 0, Access::NONE, "bob")]),
            "O:BAG:S-1-5-21-5D:(A;;0x0;;;bob)",
        ),
        (
            owned(vec![ace(Allow, 0, Access::GENERIC_READ, "bob")]),
            "O:BAG:S-1-5-21-5D:(A;;0x80000000;;;bob)",
        ),
    ];
    for (sd, text) in table {
        assert_eq!(sddl::format(&sd), text);
    }
    let protected = SecurityDescriptor {
        protected: true,
        group: None,
        ..owned(vec![])
    };
    assert_eq!(sddl::format(&protected), "O:BAD:P");
}

#[test]
fn apply_replaces_the_parts_named() {
    let base = machine_default();
    let table = [
        ("", sddl::format(&base)),
        (
            "O:alice",
            "O:aliceD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;KA;;;CO)".to_string(),
        ),
        (
            "G:BA",
            "O:SYG:BAD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;KA;;;CO)".to_string(),
        ),
        ("D:P(A;;KR;;;WD)", "O:SYD:P(A;;KR;;;WD)".to_string()),
        ("O:bobD:", "O:bobD:".to_string()),
    ];
    for (text, expected) in table {
        let applied = base.apply(&sddl::parse(text).unwrap());
        assert_eq!(sddl::format(&applied), expected, "{text:?}");
    }
    let protected = sd("O:SYD:P(A;;KR;;;WD)");
    assert!(
        !protected
            .apply(&sddl::parse("D:(A;;KR;;;WD)").unwrap())
            .protected,
        "a DACL without P is not protected"
    );
    assert!(protected.apply(&sddl::parse("O:bob").unwrap()).protected);
}

// ---- the access check ----

#[test]
fn access_check_matrix() {
    let alice = Caller::user("alice");
    let bob = Caller::user("bob");
    let admin = Caller::user("carol").with_group("BA");
    let editor = Caller::user("erin").with_group("editors");
    let taker = Caller::user("dave").with_privileges(Privileges::TAKE_OWNERSHIP);
    let nobody = Caller {
        principal: "nobody".to_string(),
        groups: Vec::new(),
        privileges: Privileges::NONE,
    };
    let system = Caller::system();
    let sid_user = Caller::user("S-1-5-21-1-2-3");
    let rc_wd = Access::READ_CONTROL | Access::WRITE_DAC;
    let max = Access::MAXIMUM_ALLOWED;
    use Access as A;
    // (what, descriptor, caller, desired, result)
    #[rustfmt::skip]
    let table = vec![
        // the owner's implicit rights
        ("owner: RC|WD despite a deny", "O:aliceD:(D;;KA;;;alice)", &alice, rc_wd, Ok(rc_wd)),
        ("owner: other rights still denied", "O:aliceD:(D;;KA;;;alice)", &alice, A::KEY_QUERY_VALUE, Err(A::KEY_QUERY_VALUE)),
        ("owner: empty DACL gives RC only", "O:aliceD:", &alice, A::KEY_READ, Err(A(0x19))),
        ("owner: WRITE_OWNER not implicit", "O:aliceD:", &alice, A::WRITE_OWNER, Err(A::WRITE_OWNER)),
        ("owner via a group", "O:BAD:", &admin, A::WRITE_DAC, Ok(A::WRITE_DAC)),
        ("not the owner: nothing implicit", "O:aliceD:", &bob, A::READ_CONTROL, Err(A::READ_CONTROL)),
        // allow and deny
        ("allow", "O:SYD:(A;;KR;;;alice)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("allow for someone else", "O:SYD:(A;;KR;;;alice)", &bob, A::KEY_READ, Err(A::KEY_READ)),
        ("deny before allow fails", "O:SYD:(D;;DC;;;alice)(A;;KA;;;alice)", &alice, A::KEY_WRITE, Err(A::KEY_SET_VALUE)),
        ("a deny of other rights passes", "O:SYD:(D;;DC;;;alice)(A;;KA;;;alice)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("allow before deny: allowed bits pass", "O:SYD:(A;;KR;;;alice)(D;;KA;;;alice)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("allow before deny: the rest is denied", "O:SYD:(A;;KR;;;alice)(D;;KA;;;alice)", &alice, A::KEY_WRITE, Err(A(0x6))),
        ("partial grants add up", "O:SYD:(A;;CC;;;alice)(A;;SW;;;BU)(A;;RPRC;;;WD)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("partial grants fall short", "O:SYD:(A;;CC;;;alice)(A;;SW;;;BU)", &alice, A::KEY_READ, Err(A(0x20010))),
        ("a deny after the grant completes is not read", "O:SYD:(A;;KR;;;alice)(D;;KR;;;WD)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("empty DACL: nothing", "O:SYD:", &alice, A::KEY_READ, Err(A::KEY_READ)),
        ("empty desired is granted", "O:SYD:", &bob, A::NONE, Ok(A::NONE)),
        ("unknown desired bits are never granted", "O:SYD:(A;;KA;;;alice)", &alice, A(0x100), Err(A(0x100))),
        // inheritance flags
        ("inherit-only entries are skipped", "O:SYD:(A;CIIO;KA;;;alice)", &alice, A::KEY_READ, Err(A::KEY_READ)),
        ("inherit-only denies are skipped", "O:SYD:(D;CIIO;KA;;;alice)(A;;KR;;;alice)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        ("CI and ID entries apply", "O:SYD:(A;CIID;KA;;;alice)", &alice, A::KEY_READ, Ok(A::KEY_READ)),
        // groups
        ("BU", "O:SYD:(A;;KR;;;BU)", &bob, A::KEY_READ, Ok(A::KEY_READ)),
        ("SYSTEM is not in BU", "O:BAD:(A;;KR;;;BU)", &system, A::KEY_READ, Err(A::KEY_READ)),
        ("WD holds every caller", "O:SYD:(A;;KR;;;WD)", &nobody, A::KEY_READ, Ok(A::KEY_READ)),
        ("AU holds every caller", "O:SYD:(A;;KR;;;AU)", &nobody, A::KEY_READ, Ok(A::KEY_READ)),
        ("BU only when a member", "O:SYD:(A;;KR;;;BU)", &nobody, A::KEY_READ, Err(A::KEY_READ)),
        ("custom group", "O:SYD:(A;;KW;;;editors)", &editor, A::KEY_WRITE, Ok(A::KEY_WRITE)),
        ("custom group: not a member", "O:SYD:(A;;KW;;;editors)", &alice, A::KEY_WRITE, Err(A::KEY_WRITE)),
        ("deny via a group", "O:SYD:(D;;SD;;;editors)(A;;KA;;;WD)", &editor, A::DELETE, Err(A::DELETE)),
        ("deny via a group: others pass", "O:SYD:(D;;SD;;;editors)(A;;KA;;;WD)", &alice, A::DELETE, Ok(A::DELETE)),
        ("a SID caller", "O:SYD:(A;;KR;;;S-1-5-21-1-2-3)", &sid_user, A::KEY_READ, Ok(A::KEY_READ)),
        ("admins", "O:SYD:(A;CI;KA;;;BA)", &admin, A::KEY_ALL_ACCESS, Ok(A::KEY_ALL_ACCESS)),
        // privileges
        ("take ownership", "O:SYD:", &taker, A::WRITE_OWNER, Ok(A::WRITE_OWNER)),
        ("take ownership despite a deny", "O:SYD:(D;;WO;;;dave)", &taker, A::WRITE_OWNER, Ok(A::WRITE_OWNER)),
        ("take ownership grants nothing else", "O:SYD:", &taker, A::WRITE_OWNER | A::WRITE_DAC, Err(A::WRITE_DAC)),
        ("no privilege, no ownership", "O:SYD:", &bob, A::WRITE_OWNER, Err(A::WRITE_OWNER)),
        // generic mapping
        ("generic stored mapped", "O:SYD:(A;;GR;;;alice)", &alice, A::GENERIC_READ, Ok(A::KEY_READ)),
        ("generic desired mapped", "O:SYD:(A;;KR;;;alice)", &alice, A::GENERIC_WRITE, Err(A(0x6))),
        ("GENERIC_ALL", "O:SYD:(A;;KA;;;alice)", &alice, A::GENERIC_ALL, Ok(A::KEY_ALL_ACCESS)),
        // MAXIMUM_ALLOWED
        ("max: all but what is denied first", "O:SYD:(D;;DC;;;alice)(A;;KA;;;alice)", &alice, max, Ok(A(0xF003D))),
        ("max: allow before deny", "O:SYD:(A;;KR;;;alice)(D;;KA;;;alice)", &alice, max, Ok(A::KEY_READ)),
        ("max: the owner's implicit rights", "O:aliceD:", &alice, max, Ok(rc_wd)),
        ("max: privilege", "O:SYD:(A;;KR;;;WD)", &taker, max, Ok(A::KEY_READ | A::WRITE_OWNER)),
        ("max: several entries", "O:SYD:(A;;CC;;;alice)(A;;SD;;;BU)(A;CIIO;KA;;;alice)", &alice, max, Ok(A::KEY_QUERY_VALUE | A::DELETE)),
        ("max: nothing at all", "O:SYD:(A;;KR;;;alice)", &bob, max, Err(A::KEY_READ)),
        ("max with a right not held", "O:SYD:(A;;KR;;;alice)", &alice, max | A::KEY_SET_VALUE, Err(A::KEY_SET_VALUE)),
        ("max with a right held", "O:SYD:(A;;KR;;;alice)", &alice, max | A::KEY_QUERY_VALUE, Ok(A::KEY_READ)),
        ("max with generic", "O:SYD:(A;;KA;;;alice)", &alice, max | A::GENERIC_READ, Ok(A::KEY_ALL_ACCESS)),
    ];
    for (what, descriptor, caller, desired, expected) in table {
        assert_eq!(check(descriptor, caller, desired), expected, "{what}");
    }
}

#[test]
fn compile_interns_aliases_as_sids() {
    let mut principals = Principals::new();
    let hand_made = SecurityDescriptor {
        owner: "BA".to_string(),
        group: None,
        protected: false,
        dacl: vec![
            ace(Allow, CI | IO, Access::KEY_READ, "BU"),
            ace(Deny, 0, Access::DELETE, "alice"),
        ],
    };
    let compiled = compiled(&hand_made, &mut principals);
    let id = |p: &str| principals.get(p).unwrap();
    assert_eq!(compiled.owner, id(ADMINISTRATORS));
    assert_eq!(
        *compiled.aces,
        [
            CompiledAce {
                allow: true,
                inherit_only: true,
                mask: Access::KEY_READ.0,
                principal: id(USERS),
            },
            CompiledAce {
                allow: false,
                inherit_only: false,
                mask: Access::DELETE.0,
                principal: id("alice"),
            },
        ]
    );
    assert_eq!(principals.get("BA"), None, "aliases are never interned");
    let admin = who(&Caller::user("carol").with_group("BA"), &mut principals);
    assert_eq!(
        access_check(&compiled, &admin, Access::WRITE_DAC),
        Ok(Access::WRITE_DAC)
    );
}

#[test]
fn identity_refuses_bad_callers() {
    let mut principals = Principals::new();
    for caller in [
        Caller::user(""),
        Caller::user("alice").with_group("a(b"),
        Caller::user("S-1-5"),
    ] {
        assert!(identity(&caller, &mut principals).is_err(), "{caller:?}");
    }
}

// ---- round trips over random descriptors ----

fn any_principal() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            SYSTEM,
            ADMINISTRATORS,
            USERS,
            EVERYONE,
            CREATOR_OWNER,
            AUTHENTICATED_USERS,
            "S-1-5-19",
            "S-1-3-4",
        ])
        .prop_map(String::from),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("S-1-5-21-{a}-{b}")),
        // Lower case first: never an alias, never "S-".
        "[a-z][a-zA-Z0-9_.@é-]{0,20}",
    ]
}

fn any_ace() -> impl Strategy<Value = Ace> {
    (any::<bool>(), 0u8..0x20, any::<u32>(), any_principal()).prop_map(
        |(allow, flags, mask, principal)| Ace {
            kind: if allow { Allow } else { Deny },
            flags: AceFlags(flags),
            mask: Access(mask & Access::KEY_ALL_ACCESS.0),
            principal,
        },
    )
}

fn any_descriptor() -> impl Strategy<Value = SecurityDescriptor> {
    (
        any_principal(),
        proptest::option::of(any_principal()),
        any::<bool>(),
        proptest::collection::vec(any_ace(), 0..12),
    )
        .prop_map(|(owner, group, protected, dacl)| SecurityDescriptor {
            owner,
            group,
            protected,
            dacl,
        })
}

proptest! {
    #[test]
    fn sddl_format_parse_round_trip(sd in any_descriptor()) {
        prop_assert_eq!(sd.validate().ok(), Some(()));
        let text = sddl::format(&sd);
        let parsed = sddl::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        prop_assert_eq!(parsed.owner.as_deref(), Some(sd.owner.as_str()));
        prop_assert_eq!(&parsed.group, &sd.group);
        prop_assert_eq!(parsed.dacl, Some((sd.protected, sd.dacl.clone())));
    }

    #[test]
    fn descriptor_codec_round_trip(sd in any_descriptor()) {
        prop_assert_eq!(decode_all(&encoded(&sd)), Ok(sd));
    }

    #[test]
    fn access_display_parse_round_trip(bits in any::<u32>()) {
        prop_assert_eq!(Access::parse(&Access(bits).to_string()), Some(Access(bits)));
    }

    #[test]
    fn sddl_parse_never_panics(text in "[OGDSAPIR:;()CKWXNL0-9x a-z-]{0,40}") {
        let _ = sddl::parse(&text);
    }
}
