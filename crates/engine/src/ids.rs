//! ids: container ids (64 hex digits, like docker's) and docker-style random
//! names (`adjective_noun`). Owns nothing on disk; uniqueness against existing
//! containers is the store's job.

use std::fs::File;
use std::io::Read;

/// Length of the short id shown by `ps` and used as the default hostname.
pub const SHORT_ID_LEN: usize = 12;

/// Reads `n` random bytes from the kernel.
fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// A new container id: 32 random bytes as 64 lowercase hex digits.
/// Like docker, an id that is all digits is re-drawn so that it can never be
/// mistaken for a number.
pub fn new_id() -> std::io::Result<String> {
    loop {
        let id: String = random_bytes(32)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !id[..SHORT_ID_LEN].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// The first 12 digits of an id.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(SHORT_ID_LEN)]
}

/// Whether `s` looks like a full container id.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is a valid container name (docker's rule:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "adoring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "beautiful",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "condescending",
    "confident",
    "cool",
    "cranky",
    "crazy",
    "dazzling",
    "determined",
    "distracted",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "flamboyant",
    "focused",
    "friendly",
    "frosty",
    "funny",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "great",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "intelligent",
    "interesting",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "naughty",
    "nervous",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "recursing",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "unruffled",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const NOUNS: &[&str] = &[
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brahmagupta",
    "brattain",
    "burnell",
    "cannon",
    "carson",
    "cerf",
    "chandrasekhar",
    "clarke",
    "colden",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "dubinsky",
    "easley",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hoover",
    "hopper",
    "hypatia",
    "jackson",
    "jennings",
    "johnson",
    "kalam",
    "kepler",
    "khorana",
    "knuth",
    "kowalevski",
    "lalande",
    "lamarr",
    "lamport",
    "leakey",
    "leavitt",
    "lovelace",
    "lumiere",
    "mayer",
    "mccarthy",
    "mclean",
    "meitner",
    "mendel",
    "merkle",
    "minsky",
    "mirzakhani",
    "morse",
    "napier",
    "nash",
    "newton",
    "nobel",
    "noether",
    "noyce",
    "pasteur",
    "payne",
    "perlman",
    "pike",
    "poincare",
    "ptolemy",
    "raman",
    "ramanujan",
    "ritchie",
    "rubin",
    "saha",
    "sammet",
    "shannon",
    "shockley",
    "sinoussi",
    "stonebraker",
    "swanson",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volhard",
    "wescoff",
    "wiles",
    "williams",
    "wilson",
    "wing",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// A random `adjective_noun` name; `attempt` > 0 appends a digit, as docker
/// does when the plain name is taken.
pub fn random_name(attempt: u32) -> std::io::Result<String> {
    let r = random_bytes(4)?;
    let a = u16::from_le_bytes([r[0], r[1]]) as usize % ADJECTIVES.len();
    let n = u16::from_le_bytes([r[2], r[3]]) as usize % NOUNS.len();
    let mut name = format!("{}_{}", ADJECTIVES[a], NOUNS[n]);
    if attempt > 0 {
        name.push_str(&(r[0] % 10).to_string());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert!(is_full_id(&a) && is_full_id(&b));
        assert_ne!(a, b);
        assert_eq!(short(&a).len(), 12);
    }

    #[test]
    fn random_names_are_valid_names() {
        for i in 0..50 {
            let n = random_name(i % 2).unwrap();
            assert!(is_valid_name(&n), "{n}");
            assert!(n.contains('_'));
        }
    }

    #[test]
    fn name_rules() {
        assert!(is_valid_name("web-1.a_b"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a"));
        assert!(!is_valid_name("a/b"));
    }
}
