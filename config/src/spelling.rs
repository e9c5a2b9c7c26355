//! Near misses: the known word a mistyped one most likely meant, for
//! hints such as "did you mean `timeout`?".

/// The word of `known` nearest to `word` (letter case aside), when it is
/// near enough to be a typo: at most a third of the letters differ.
pub fn near_miss<'k>(word: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let word = word.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (distance(&word, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance (Levenshtein) between two short words.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word() {
        let known = ["timeout", "triggers", "kill_grace", "name"];
        assert_eq!(near_miss("timout", known), Some("timeout"));
        assert_eq!(near_miss("trigers", known), Some("triggers"));
        assert_eq!(near_miss("TimeOut", known), Some("timeout"));
        assert_eq!(near_miss("colour", known), None);
        assert_eq!(near_miss("x", known), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
