//! SDDL, the text form of a security descriptor: the subset of Windows' Security Descriptor
//! Definition Language that key descriptors need.
//!
//! ```text
//! O:<account> G:<account> D:<P|AI|AR>(<type>;<flags>;<rights>;;;<account>)...
//! ```
//!
//! Parts may be omitted but keep the order O, G, D, as Windows requires; whitespace between
//! parts and ACEs (and around ACE fields) is ignored. Types are `A` and `D`; flags `CI OI NP
//! IO ID`; rights a number or two-letter codes; an account an alias (`SY`), a SID, or a
//! plain name (our extension; names cannot hold `:`, so a part always ends where the next
//! `X:` begins). Object ACEs, GUIDs and the SACL are refused. `parse(&format(sd))` gives
//! `sd` back for every valid descriptor (the proptest in security/tests.rs).

use super::access::{Access, parse_hex};
use super::descriptor::{ACES_MAX, Ace, AceFlags, AceKind, SecurityDescriptor};
use super::principals::{alias_to_sid, check_principal, sid_to_alias};
use crate::error::{Error, Result, clip};

/// The longest SDDL text accepted, in bytes: about what a descriptor of
/// SECURITY_DESCRIPTOR_MAX_BYTES takes to write.
pub const SDDL_MAX_BYTES: usize = 64 * 1024;

/// What an SDDL text says: each part it names, and nothing for the parts it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Sddl {
    /// `O:`, as stored (aliases resolved to SIDs).
    pub owner: Option<String>,
    /// `G:`, as stored.
    pub group: Option<String>,
    /// `D:`: whether protected (`P`), and the entries in order.
    pub dacl: Option<(bool, Vec<Ace>)>,
}

impl From<&SecurityDescriptor> for Sddl {
    /// Every part of `descriptor`: applying it replaces a descriptor whole.
    fn from(descriptor: &SecurityDescriptor) -> Sddl {
        Sddl {
            owner: Some(descriptor.owner.clone()),
            group: descriptor.group.clone(),
            dacl: Some((descriptor.protected, descriptor.dacl.clone())),
        }
    }
}

impl SecurityDescriptor {
    /// This descriptor with the parts `sddl` names replaced; the parts it leaves out are
    /// kept. The result is not checked: `validate` it before storing.
    pub fn apply(&self, sddl: &Sddl) -> SecurityDescriptor {
        let (protected, dacl) = sddl
            .dacl
            .clone()
            .unwrap_or_else(|| (self.protected, self.dacl.clone()));
        SecurityDescriptor {
            owner: sddl.owner.clone().unwrap_or_else(|| self.owner.clone()),
            group: sddl.group.clone().or_else(|| self.group.clone()),
            protected,
            dacl,
        }
    }
}

/// ACE flag codes, in the order Windows prints them.
const FLAG_CODES: [(&str, AceFlags); 5] = [
    ("OI", AceFlags::OBJECT_INHERIT),
    ("CI", AceFlags::CONTAINER_INHERIT),
    ("NP", AceFlags::NO_PROPAGATE_INHERIT),
    ("IO", AceFlags::INHERIT_ONLY),
    ("ID", AceFlags::INHERITED),
];

/// Rights that have a code of their own, in the order `format` prints them. The first six
/// are the directory-service codes whose bits coincide with the key rights.
const SPECIFIC_CODES: [(&str, Access); 10] = [
    ("CC", Access::KEY_QUERY_VALUE),
    ("DC", Access::KEY_SET_VALUE),
    ("LC", Access::KEY_CREATE_SUB_KEY),
    ("SW", Access::KEY_ENUMERATE_SUB_KEYS),
    ("RP", Access::KEY_NOTIFY),
    ("WP", Access::KEY_CREATE_LINK),
    ("SD", Access::DELETE),
    ("RC", Access::READ_CONTROL),
    ("WD", Access::WRITE_DAC),
    ("WO", Access::WRITE_OWNER),
];

/// Composite codes; the first three are printed when a mask equals them exactly.
const COMPOSITE_CODES: [(&str, Access); 8] = [
    ("KA", Access::KEY_ALL_ACCESS),
    ("KR", Access::KEY_READ),
    ("KW", Access::KEY_WRITE),
    ("KX", Access::KEY_EXECUTE),
    ("GA", Access::GENERIC_ALL),
    ("GR", Access::GENERIC_READ),
    ("GW", Access::GENERIC_WRITE),
    ("GX", Access::GENERIC_EXECUTE),
];
const PRINTED_COMPOSITES: usize = 3;

/// Parses SDDL text. Errors say at which byte and what is wrong.
pub fn parse(text: &str) -> Result<Sddl> {
    parse_parts(text).map_err(|Fail { at, reason }| Error::BadSddl {
        sddl: clip(text),
        at,
        reason,
    })
}

/// The canonical SDDL of `sd`: `O:..[G:..]D:[P](..)..`, aliases where they exist, no
/// whitespace.
pub fn format(sd: &SecurityDescriptor) -> String {
    let mut out = format!("O:{}", account(&sd.owner));
    if let Some(group) = &sd.group {
        out.push_str("G:");
        out.push_str(account(group));
    }
    out.push_str("D:");
    if sd.protected {
        out.push('P');
    }
    for ace in &sd.dacl {
        out.push('(');
        out.push(match ace.kind {
            AceKind::Allow => 'A',
            AceKind::Deny => 'D',
        });
        out.push(';');
        for (code, flag) in FLAG_CODES {
            if ace.flags.contains(flag) {
                out.push_str(code);
            }
        }
        out.push(';');
        push_rights(&mut out, ace.mask);
        out.push_str(";;;");
        out.push_str(account(&ace.principal));
        out.push(')');
    }
    out
}

fn account(principal: &str) -> &str {
    sid_to_alias(principal).unwrap_or(principal)
}

fn push_rights(out: &mut String, mask: Access) {
    if let Some((code, _)) = COMPOSITE_CODES
        .iter()
        .take(PRINTED_COMPOSITES)
        .find(|(_, rights)| *rights == mask)
    {
        out.push_str(code);
        return;
    }
    let coded = SPECIFIC_CODES
        .iter()
        .fold(Access::NONE, |all, (_, rights)| all.union(*rights));
    if mask.is_empty() || !coded.contains(mask) {
        out.push_str(&format!("{:#x}", mask.0));
        return;
    }
    for (code, rights) in SPECIFIC_CODES {
        if mask.contains(rights) {
            out.push_str(code);
        }
    }
}

/// Where parsing stopped and why; becomes [`Error::BadSddl`].
struct Fail {
    at: usize,
    reason: String,
}

fn fail<T>(at: usize, reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        at,
        reason: reason.into(),
    })
}

/// The parts, ranked by the order Windows requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Owner,
    Group,
    Dacl,
}

impl Part {
    fn tag(self) -> &'static str {
        match self {
            Part::Owner => "O:",
            Part::Group => "G:",
            Part::Dacl => "D:",
        }
    }
}

fn parse_parts(text: &str) -> Result<Sddl, Fail> {
    if text.len() > SDDL_MAX_BYTES {
        return fail(
            SDDL_MAX_BYTES,
            format!(
                "SDDL is {} bytes; SDDL_MAX_BYTES is {SDDL_MAX_BYTES}",
                text.len()
            ),
        );
    }
    let mut p = Cursor { text, pos: 0 };
    let mut sddl = Sddl::default();
    let mut last: Option<Part> = None;
    while let Some(part) = p.part_tag(last)? {
        if let Some(before) = last {
            if before == part {
                return fail(p.pos, format!("duplicate part {}", part.tag()));
            }
            if before > part {
                return fail(
                    p.pos,
                    format!(
                        "part {} after {} (parts come in the order O:, G:, D:)",
                        part.tag(),
                        before.tag()
                    ),
                );
            }
        }
        p.pos += 2;
        match part {
            Part::Owner => sddl.owner = Some(p.account_part(part)?),
            Part::Group => sddl.group = Some(p.account_part(part)?),
            Part::Dacl => sddl.dacl = Some(p.dacl()?),
        }
        last = Some(part);
    }
    Ok(sddl)
}

/// A position in the text; always on a character boundary.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The part starting here, after whitespace; None at the end of the text.
    fn part_tag(&mut self, last: Option<Part>) -> Result<Option<Part>, Fail> {
        self.skip_whitespace();
        let rest = self.rest();
        if rest.is_empty() {
            return Ok(None);
        }
        for part in [Part::Owner, Part::Group, Part::Dacl] {
            if rest.starts_with(part.tag()) {
                return Ok(Some(part));
            }
        }
        if rest.starts_with("S:") {
            return fail(self.pos, "a SACL (S:) is not supported");
        }
        let found = rest.chars().next().unwrap_or_default();
        let expected = match last {
            Some(Part::Dacl) => "an ACE in parentheses",
            _ => "O:, G: or D:",
        };
        fail(
            self.pos,
            format!("unexpected {found:?}: expected {expected}"),
        )
    }

    /// The account after `O:` or `G:`: up to whitespace or the letter before the next `:`.
    fn account_part(&mut self, part: Part) -> Result<String, Fail> {
        self.skip_whitespace();
        let rest = self.rest();
        let mut end = rest
            .find(|c: char| c == ':' || c.is_whitespace())
            .unwrap_or(rest.len());
        if rest.get(end..).is_some_and(|after| after.starts_with(':')) {
            // The letter before ':' names the next part (principals cannot hold ':').
            end = rest
                .get(..end)
                .and_then(|token| token.char_indices().next_back())
                .map_or(0, |(i, _)| i);
        }
        let token = rest.get(..end).unwrap_or_default();
        if token.is_empty() {
            return fail(
                self.pos,
                format!("expected an account after {}", part.tag()),
            );
        }
        let principal = parse_account(token, self.pos)?;
        self.pos += end;
        Ok(principal)
    }

    /// After `D:`: the flags, then the ACEs.
    fn dacl(&mut self) -> Result<(bool, Vec<Ace>), Fail> {
        self.skip_whitespace();
        let protected = self.dacl_flags()?;
        let mut aces = Vec::new();
        loop {
            self.skip_whitespace();
            if !self.rest().starts_with('(') {
                return Ok((protected, aces));
            }
            if aces.len() == ACES_MAX {
                return fail(self.pos, format!("more than ACES_MAX ({ACES_MAX}) ACEs"));
            }
            aces.push(self.ace()?);
        }
    }

    /// `P`, `AI`, `AR` in any order, each at most once; AI and AR (auto-inheritance
    /// bookkeeping in Windows) are accepted and ignored. Returns whether `P` was there.
    fn dacl_flags(&mut self) -> Result<bool, Fail> {
        let mut seen: Vec<&str> = Vec::new();
        loop {
            let rest = self.rest();
            let Some(code) = ["P", "AI", "AR"].into_iter().find(|c| rest.starts_with(c)) else {
                break;
            };
            if seen.contains(&code) {
                return fail(self.pos, format!("duplicate DACL flag {code:?}"));
            }
            seen.push(code);
            self.pos += code.len();
        }
        let rest = self.rest();
        let ends = rest.is_empty()
            || rest.starts_with('(')
            || rest.starts_with(char::is_whitespace)
            || rest.get(1..).is_some_and(|after| after.starts_with(':'));
        if !ends {
            let found = rest.chars().next().unwrap_or_default();
            return fail(
                self.pos,
                format!("unknown DACL flag {found:?} (expected P, AI or AR)"),
            );
        }
        Ok(seen.contains(&"P"))
    }

    /// One `(type;flags;rights;guid;guid;account)`, the cursor on its `(`.
    fn ace(&mut self) -> Result<Ace, Fail> {
        let open = self.pos;
        let body_at = open + 1;
        let body = self.text.get(body_at..).unwrap_or_default();
        // A '(' before the ')' means this ACE was never closed and the next one began.
        let close = body.find([')', '(']);
        let Some(close) = close.filter(|&i| body.as_bytes().get(i) == Some(&b')')) else {
            return fail(open, "ACE is missing its closing parenthesis");
        };
        let body = body.get(..close).unwrap_or_default();
        let mut fields = Vec::with_capacity(ACE_FIELDS);
        let mut field_at = body_at;
        for field in body.split(';') {
            let trimmed = field.trim_start();
            fields.push((field_at + field.len() - trimmed.len(), trimmed.trim_end()));
            field_at += field.len() + 1;
        }
        let [kind, flags, rights, object, inherit_object, who] = fields[..] else {
            return fail(
                body_at,
                format!(
                    "ACE has {} fields; expected 6 (type;flags;rights;object_guid;\
                     inherit_object_guid;account)",
                    fields.len()
                ),
            );
        };
        let kind = parse_kind(kind)?;
        let flags = parse_flags(flags)?;
        let mask = parse_rights(rights)?;
        for (at, guid) in [object, inherit_object] {
            if !guid.is_empty() {
                return fail(at, format!("object GUID {guid:?} is not supported"));
            }
        }
        if who.1.is_empty() {
            return fail(who.0, "expected an account");
        }
        let principal = parse_account(who.1, who.0)?;
        self.pos = body_at + close + 1;
        Ok(Ace {
            kind,
            flags,
            mask,
            principal,
        })
    }
}

const ACE_FIELDS: usize = 6;

/// A field of an ACE: where it starts, and its text without surrounding whitespace.
type Field<'a> = (usize, &'a str);

fn parse_kind((at, text): Field<'_>) -> Result<AceKind, Fail> {
    match text {
        "A" => Ok(AceKind::Allow),
        "D" => Ok(AceKind::Deny),
        _ => fail(at, format!("unknown ACE type {text:?} (expected A or D)")),
    }
}

/// Splits `text` into two-letter codes, each with its offset. Codes are ASCII, so any
/// other character is a bad code where it stands.
fn codes(at: usize, text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let rest = text.get(i..).filter(|r| !r.is_empty())?;
        let len = rest
            .char_indices()
            .nth(2)
            .map_or(rest.len(), |(end, _)| end);
        let code = rest.get(..len)?;
        let here = at + i;
        i += len;
        Some((here, code))
    })
}

fn parse_flags((at, text): Field<'_>) -> Result<AceFlags, Fail> {
    let mut flags = AceFlags::NONE;
    for (here, code) in codes(at, text) {
        let Some((_, flag)) = FLAG_CODES.iter().find(|(c, _)| *c == code) else {
            return fail(
                here,
                format!("unknown ACE flag {code:?} (expected CI, OI, NP, IO or ID)"),
            );
        };
        if flags.contains(*flag) {
            return fail(here, format!("duplicate ACE flag {code:?}"));
        }
        flags = flags.union(*flag);
    }
    Ok(flags)
}

fn parse_rights((at, text): Field<'_>) -> Result<Access, Fail> {
    let rights = if text.is_empty() {
        return fail(at, "expected rights");
    } else if text.starts_with("0x") || text.starts_with("0X") {
        let Some(bits) = parse_hex(text) else {
            return fail(at, format!("bad hex rights {text:?}"));
        };
        Access(bits)
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(bits) = text.parse::<u32>() else {
            return fail(at, format!("rights {text:?} do not fit in 32 bits"));
        };
        Access(bits)
    } else {
        let mut rights = Access::NONE;
        for (here, code) in codes(at, text) {
            let Some((_, bits)) = COMPOSITE_CODES
                .iter()
                .chain(SPECIFIC_CODES.iter())
                .find(|(c, _)| *c == code)
            else {
                return fail(here, format!("unknown rights code {code:?}"));
            };
            rights = rights.union(*bits);
        }
        rights
    };
    let mapped = rights.map_generic();
    if !Access::KEY_ALL_ACCESS.contains(mapped) {
        return fail(
            at,
            format!(
                "rights {:#x} hold bits outside KEY_ALL_ACCESS ({:#x})",
                mapped.0,
                Access::KEY_ALL_ACCESS.0
            ),
        );
    }
    Ok(mapped)
}

/// An alias becomes its SID; anything else must be a valid principal.
fn parse_account(text: &str, at: usize) -> Result<String, Fail> {
    if let Some(sid) = alias_to_sid(text) {
        return Ok(sid.to_string());
    }
    match check_principal(text) {
        Ok(()) => Ok(text.to_string()),
        Err(e) => fail(at, format!("bad account: {e}")),
    }
}
