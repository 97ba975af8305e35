use crate::expr::lexer::{lex, Tok};
use crate::expr::ExprError;

fn toks(src: &str) -> Vec<Tok> {
    lex(src)
        .expect("lexes")
        .into_iter()
        .map(|t| t.tok)
        .collect()
}

fn name(s: &str) -> Tok {
    Tok::Name(s.to_string())
}

fn err(src: &str) -> ExprError {
    lex(src).expect_err("should fail to lex")
}

#[test]
fn every_operator_and_punctuation() {
    use Tok::*;
    assert_eq!(
        toks("|| && ! == != < <= > >= ( ) [ ] , -"),
        vec![
            OrOr, AndAnd, Bang, EqEq, NotEq, Lt, Le, Gt, Ge, LParen, RParen, LBracket, RBracket,
            Comma, Minus, Eof
        ]
    );
}

#[test]
fn operators_need_no_spaces() {
    use Tok::*;
    assert_eq!(toks("a<=1"), vec![name("a"), Le, Number(1.0), Eof]);
    assert_eq!(toks("!(a)"), vec![Bang, LParen, name("a"), RParen, Eof]);
    assert_eq!(toks("a!=b"), vec![name("a"), NotEq, name("b"), Eof]);
}

#[test]
fn offsets_are_char_offsets() {
    let tokens = lex("\"é€\" == x").unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.offset).collect::<Vec<_>>(),
        vec![0, 5, 8, 9]
    );
}

#[test]
fn dotted_names_are_one_token() {
    assert_eq!(
        toks("tasks.scan.outputs.critical"),
        vec![name("tasks.scan.outputs.critical"), Tok::Eof]
    );
    assert_eq!(toks("_x.y_2"), vec![name("_x.y_2"), Tok::Eof]);
}

#[test]
fn hyphen_inside_a_name_belongs_to_it() {
    assert_eq!(
        toks("tasks.revert-types.outputs.x"),
        vec![name("tasks.revert-types.outputs.x"), Tok::Eof]
    );
    assert_eq!(toks("a-b"), vec![name("a-b"), Tok::Eof]);
    assert_eq!(toks("a--b"), vec![name("a--b"), Tok::Eof]);
    assert_eq!(toks("a-1"), vec![name("a-1"), Tok::Eof]);
}

#[test]
fn free_standing_hyphen_is_a_minus() {
    assert_eq!(
        toks("a - b"),
        vec![name("a"), Tok::Minus, name("b"), Tok::Eof]
    );
    assert_eq!(
        toks("a- b"),
        vec![name("a"), Tok::Minus, name("b"), Tok::Eof]
    );
    assert_eq!(
        toks("a -b"),
        vec![name("a"), Tok::Minus, name("b"), Tok::Eof]
    );
}

#[test]
fn keywords_only_when_standing_alone() {
    use Tok::*;
    assert_eq!(toks("true false in not"), vec![True, False, In, Not, Eof]);
    assert_eq!(toks("tasks.in.not"), vec![name("tasks.in.not"), Eof]);
    assert_eq!(toks("trueish"), vec![name("trueish"), Eof]);
    assert_eq!(toks("inputs.true"), vec![name("inputs.true"), Eof]);
}

#[test]
fn numbers() {
    use Tok::*;
    assert_eq!(
        toks("0 80 0.5 12.25"),
        vec![Number(0.0), Number(80.0), Number(0.5), Number(12.25), Eof]
    );
}

#[test]
fn malformed_numbers() {
    for src in ["80abc", "1.2.3", "5.", "3_000"] {
        let e = err(src);
        assert_eq!(e.offset, 0, "{src}");
        assert_eq!(
            e.message,
            "malformed number at column 1 — write numbers like `80` or `0.5`"
        );
    }
    assert_eq!(err("x == 1.5.5").offset, 5);
}

#[test]
fn strings_in_both_quotes_with_escapes() {
    assert_eq!(toks(r#""high""#), vec![Tok::Str("high".into()), Tok::Eof]);
    assert_eq!(toks("'high'"), vec![Tok::Str("high".into()), Tok::Eof]);
    assert_eq!(
        toks(r#""a\"b\'c\\d\ne""#),
        vec![Tok::Str("a\"b'c\\d\ne".into()), Tok::Eof]
    );
    assert_eq!(
        toks(r#"'it\'s "fine"'"#),
        vec![Tok::Str("it's \"fine\"".into()), Tok::Eof]
    );
    assert_eq!(toks(r#""""#), vec![Tok::Str(String::new()), Tok::Eof]);
}

#[test]
fn unterminated_string_points_at_its_start() {
    let e = err(r#"x == "abc"#);
    assert_eq!(e.offset, 5);
    assert_eq!(
        e.message,
        "unterminated string starting at column 6 — close it with \""
    );
    let e = err("x == 'abc");
    assert_eq!(
        e.message,
        "unterminated string starting at column 6 — close it with '"
    );
    // An escaped closing quote does not close the string.
    assert_eq!(err(r#""abc\""#).offset, 0);
    assert_eq!(err(r#""abc\"#).offset, 0);
}

#[test]
fn unknown_escape() {
    let e = err(r#"x == "a\tb""#);
    assert_eq!(e.offset, 7);
    assert_eq!(
        e.message,
        "unknown escape `\\t` at column 8 — the escapes are \\\", \\', \\\\ and \\n"
    );
}

#[test]
fn single_char_versions_of_double_operators() {
    let e = err("a = 1");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (2, "unexpected `=` at column 3 — write `==`")
    );
    assert_eq!(
        err("a & b").message,
        "unexpected `&` at column 3 — write `&&`"
    );
    assert_eq!(
        err("a | b").message,
        "unexpected `|` at column 3 — write `||`"
    );
}

#[test]
fn unexpected_character() {
    let e = err("a == $x");
    assert_eq!(e.offset, 5);
    assert!(
        e.message
            .starts_with("unexpected character `$` at column 6 — "),
        "{}",
        e.message
    );
}

#[test]
fn dangling_dot_in_a_name() {
    let e = err("tasks. == 1");
    assert_eq!(e.offset, 6);
    assert_eq!(
        e.message,
        "expected a name segment after `tasks.` at column 7 — segments start with a letter or _"
    );
    assert_eq!(err("tasks.0x").offset, 6);
    assert_eq!(err("a.b.").offset, 4);
}

#[test]
fn empty_source_is_just_eof() {
    assert_eq!(toks("  \n\t "), vec![Tok::Eof]);
    assert_eq!(lex("  ").unwrap()[0].offset, 2);
}
