//! Parse errors without values: serde and TOML describe a value of the wrong type by quoting it
//! (`invalid type: string "…", expected a sequence`), and the value may be a secret written in
//! the wrong place. These helpers keep the key path, the position and what was expected, and
//! drop the value, so `siemgate check`, the start, a reload's log and the reload API's answer
//! never print it.

/// The message of a serde or TOML parse error with every quoted value removed.
///
/// `invalid type: string "s3cr3t", expected a sequence` -> `invalid type: string, expected a
/// sequence`; `unknown variant `s3cr3t`, expected one of ...` -> `unknown variant, expected one
/// of ...`. Key names (`unknown field`, `missing field`) are kept: they are not values.
pub fn without_values(message: &str) -> String {
    let message = message.trim_end();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // A quoted value may itself contain ", expected "; the real one is the last.
            let (unexpected, expected) = match rest.rsplit_once(", expected ") {
                Some((u, e)) => (u, Some(e)),
                None => (rest, None),
            };
            let kind = value_kind(unexpected);
            return match expected {
                Some(e) => format!("{prefix}{kind}, expected {e}"),
                None => format!("{prefix}{kind}"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        // serde writes "`, expected one of ..." or "`, there are no variants" after the value.
        let tail = ["`, expected ", "`, there are no variants"]
            .iter()
            .find_map(|m| rest.rfind(m).map(|i| &rest[i + 3..]));
        return match tail {
            Some(t) => format!("unknown variant, {t}"),
            None => "unknown variant".to_owned(),
        };
    }
    // Anything else that quotes a string value (a custom message) loses the quoted part.
    if message.contains('"') {
        return drop_quoted(message);
    }
    message.to_owned()
}

/// `string "x"` -> `string`, ``integer `5` `` -> `integer`, `sequence` -> `sequence`.
fn value_kind(unexpected: &str) -> &str {
    match unexpected.find(['"', '`', '\'']) {
        Some(i) => unexpected[..i].trim_end(),
        None => unexpected.trim_end(),
    }
    .trim_end_matches(':')
}

/// Replaces every double-quoted part (with `\"` escapes) by `"…"`; spans between backticks
/// (key names and syntax tokens such as `` `"` ``) are kept as they are.
fn drop_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push('`');
                for t in chars.by_ref() {
                    out.push(t);
                    if t == '`' {
                        break;
                    }
                }
            }
            '"' => {
                out.push_str("\"…\"");
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// A message for an error found below the key where serde stops tracking (inside a table whose
/// variant a key selects): `at `secrets`: invalid type: ...`; [`split_nested`] takes it apart.
pub fn nested(path: &str, message: &str) -> String {
    format!("at `{path}`: {message}")
}

/// `at `secrets`: rest` -> (`secrets`, `rest`).
pub fn split_nested(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("at `")?;
    let (path, rest) = rest.split_once("`: ")?;
    Some((path, rest))
}

/// The key path serde_path_to_error reports, as written in a config (`sources[0].auth`), or
/// empty for the whole file.
pub fn key_path(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." {
        String::new()
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_dropped_and_kinds_kept() {
        let cases = [
            (
                "invalid type: string \"TOPSECRET\", expected a sequence",
                "invalid type: string, expected a sequence",
            ),
            (
                "invalid type: string \"a\\\", expected x\", expected a sequence",
                "invalid type: string, expected a sequence",
            ),
            (
                "invalid type: integer `123456789`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid type: floating point `1.5`, expected a string",
                "invalid type: floating point, expected a string",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "invalid type: boolean, expected a string",
            ),
            (
                "invalid type: sequence, expected a string",
                "invalid type: sequence, expected a string",
            ),
            (
                "invalid value: string \"SECRET\", expected one of a, b",
                "invalid value: string, expected one of a, b",
            ),
            (
                "unknown variant `SECRET`, expected one of `token`, `basic`",
                "unknown variant, expected one of `token`, `basic`",
            ),
            (
                "unknown field `secretz`, expected one of `secret`, `secrets`",
                "unknown field `secretz`, expected one of `secret`, `secrets`",
            ),
            ("missing field `listen`", "missing field `listen`"),
            (
                "invalid duration \"SECRET\": use 10s",
                "invalid duration \"…\": use 10s",
            ),
            (
                "invalid basic string, expected `\"`",
                "invalid basic string, expected `\"`",
            ),
            (
                "duplicate key `a\"b` in \"SECRET\"",
                "duplicate key `a\"b` in \"…\"",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(without_values(input), want, "{input}");
        }
    }
}
