//! Shell quoting for the commands remedies suggest, so a path with a space or a quote pastes
//! into a POSIX shell as one word.

/// Quotes `s` for a POSIX shell: unchanged when it holds only characters that are never
/// special (`[A-Za-z0-9/._:@%+=,-]`), else in single quotes with each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._:@%+=,-".contains(&b)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/mnt/PlexStorage", "/mnt/PlexStorage")]
    #[case("/mnt/Plex Drive", "'/mnt/Plex Drive'")]
    #[case("it's", "'it'\\''s'")]
    #[case("$HOME", "'$HOME'")]
    #[case("", "''")]
    fn quoting(#[case] s: &str, #[case] want: &str) {
        assert_eq!(quote(s), want);
    }

    #[test]
    fn the_shell_reads_back_what_we_quote() {
        for s in ["/mnt/Plex Drive", "it's", "$HOME `x` \\ \"q\"", "tab\there", "new\nline", "*?[a]"] {
            let out =
                std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", quote(s))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
