use crate::expr::parser::Kind;
use crate::expr::{parse, Expr, ExprError};

/// Renders the tree as an s-expression, so precedence tests read at a glance.
fn tree(e: &Expr) -> String {
    match &e.kind {
        Kind::Number(n) => n.to_string(),
        Kind::Str(s) => format!("{s:?}"),
        Kind::Bool(b) => b.to_string(),
        Kind::Name(n) => n.clone(),
        Kind::List(items) => format!("[{}]", items.iter().map(tree).collect::<Vec<_>>().join(" ")),
        Kind::Not(inner) => format!("(! {})", tree(inner)),
        Kind::And(l, r) => format!("(&& {} {})", tree(l), tree(r)),
        Kind::Or(l, r) => format!("(|| {} {})", tree(l), tree(r)),
        Kind::Compare(op, l, r) => format!("({} {} {})", op.symbol(), tree(l), tree(r)),
    }
}

fn p(src: &str) -> String {
    tree(&parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.message)))
}

fn err(src: &str) -> ExprError {
    parse(src).expect_err("should fail to parse")
}

#[test]
fn literals() {
    assert_eq!(p("80"), "80");
    assert_eq!(p("0.5"), "0.5");
    assert_eq!(p("-3"), "-3");
    assert_eq!(p("- 2.5"), "-2.5");
    assert_eq!(p("'hi'"), "\"hi\"");
    assert_eq!(p("true"), "true");
    assert_eq!(p("false"), "false");
    assert_eq!(p("[]"), "[]");
    assert_eq!(p("[\"high\", \"critical\"]"), "[\"high\" \"critical\"]");
    assert_eq!(p("[1, 2,]"), "[1 2]");
}

#[test]
fn every_comparison_operator() {
    for op in ["==", "!=", "<", "<=", ">", ">=", "in", "not in"] {
        assert_eq!(p(&format!("a {op} b")), format!("({op} a b)"));
    }
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    assert_eq!(p("!a && b || c"), "(|| (&& (! a) b) c)");
    assert_eq!(p("a || b && c"), "(|| a (&& b c))");
    assert_eq!(p("a && b || c && d"), "(|| (&& a b) (&& c d))");
    assert_eq!(p("a || b || c"), "(|| (|| a b) c)");
    assert_eq!(p("a && b && c"), "(&& (&& a b) c)");
}

#[test]
fn not_binds_looser_than_comparisons() {
    assert_eq!(p("!a == b"), "(! (== a b))");
    assert_eq!(p("!!a"), "(! (! a))");
    assert_eq!(p("!x in [1]"), "(! (in x [1]))");
}

#[test]
fn parentheses_override_precedence() {
    assert_eq!(p("(a || b) && c"), "(&& (|| a b) c)");
    assert_eq!(p("!(a && b)"), "(! (&& a b))");
    assert_eq!(p("((a))"), "a");
    assert_eq!(p("(a < b) == true"), "(== (< a b) true)");
}

#[test]
fn issue_example() {
    assert_eq!(
        p("tasks.scan.outputs.critical == 0 && tasks.tests.outputs.coverage >= 80"),
        "(&& (== tasks.scan.outputs.critical 0) (>= tasks.tests.outputs.coverage 80))"
    );
}

#[test]
fn membership() {
    assert_eq!(
        p("inputs.risk in [\"high\", \"critical\"]"),
        "(in inputs.risk [\"high\" \"critical\"])"
    );
    assert_eq!(
        p("inputs.risk not in ['low']"),
        "(not in inputs.risk [\"low\"])"
    );
    assert_eq!(p("x in [-1, a.b]"), "(in x [-1 a.b])");
}

#[test]
fn chained_comparisons_are_rejected_at_the_second_operator() {
    let e = err("a < b < c");
    assert_eq!(e.offset, 6);
    assert_eq!(
        e.message,
        "comparisons cannot be chained (`a < b < c`) — join them with &&"
    );
    assert_eq!(err("a == 1 != b").offset, 7);
    assert_eq!(err("x in [1] in [true]").offset, 9);
    assert_eq!(err("x == y not in [1]").offset, 7);
}

#[test]
fn unexpected_closing_paren_where_a_value_is_needed() {
    let e = err("ab && (yy || )");
    assert_eq!(e.offset, 13);
    assert_eq!(e.message, "unexpected `)` at column 14 — expected a value");
}

#[test]
fn missing_operand_at_end() {
    let e = err("a ==");
    assert_eq!(e.offset, 4);
    assert_eq!(
        e.message,
        "unexpected end of expression at column 5 — expected a value"
    );
    assert_eq!(err("a &&").offset, 4);
    assert_eq!(err("!").offset, 1);
    assert_eq!(err("&& a").offset, 0);
}

#[test]
fn missing_closing_paren() {
    let e = err("(a == 1 && b");
    assert_eq!(e.offset, 12);
    assert_eq!(
        e.message,
        "expected `)` to close the `(` at column 1, found end of expression at column 13 — add the missing `)`"
    );
    assert_eq!(err("(a b)").offset, 3);
}

#[test]
fn trailing_tokens() {
    let e = err("a == 1 b");
    assert_eq!(e.offset, 7);
    assert_eq!(
        e.message,
        "unexpected name `b` at column 8 — expected an operator such as &&, || or =="
    );
    assert_eq!(
        err("a )").message,
        "unexpected `)` at column 3 — there is no `(` for it to close"
    );
    assert_eq!(
        err("a and b").message,
        "unexpected name `and` at column 3 — write `&&` for \"and\""
    );
    assert_eq!(
        err("a or b").message,
        "unexpected name `or` at column 3 — write `||` for \"or\""
    );
}

#[test]
fn arithmetic_is_not_supported() {
    let e = err("a - b");
    assert_eq!(e.offset, 2);
    assert_eq!(
        e.message,
        "unexpected `-` at column 3 — arithmetic is not supported"
    );
    let e = err("x > -y");
    assert_eq!(e.offset, 4);
    assert!(
        e.message
            .starts_with("`-` at column 5 can only negate a number literal"),
        "{}",
        e.message
    );
    assert_eq!(err("--3").offset, 0);
}

#[test]
fn bang_inside_a_comparison_needs_parentheses() {
    let e = err("a == !b");
    assert_eq!(e.offset, 5);
    assert!(e.message.contains("`a == (!b)`"), "{}", e.message);
    assert_eq!(p("a == (!b)"), "(== a (! b))");
}

#[test]
fn not_must_precede_in() {
    let e = err("a not b");
    assert_eq!(e.offset, 2);
    assert_eq!(
        e.message,
        "`not` at column 3 must be followed by `in` — use `!` to negate a condition"
    );
    assert_eq!(err("not a").offset, 0);
}

#[test]
fn malformed_lists() {
    let e = err("x in [1 2]");
    assert_eq!(e.offset, 8);
    assert_eq!(
        e.message,
        "expected `,` or `]` in the list opened at column 6, found number `2` at column 9 — separate items with commas"
    );
    assert_eq!(err("x in [1,").offset, 8);
    assert_eq!(err("x in [,]").offset, 6);
}

#[test]
fn empty_expression() {
    for src in ["", "   "] {
        let e = err(src);
        assert_eq!(e.offset, 0);
        assert_eq!(
            e.message,
            "empty expression — write a condition such as `tasks.tests.outputs.coverage >= 80`"
        );
    }
}

#[test]
fn lexer_errors_surface_through_parse() {
    assert_eq!(err("x == \"abc").offset, 5);
}

#[test]
fn node_offsets_point_at_operators_and_names() {
    let e = parse("a.b == 1 && !c").unwrap();
    assert_eq!(e.offset, 9);
    let Kind::And(lhs, rhs) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!((lhs.offset, rhs.offset), (4, 12));
    let Kind::Compare(_, name, _) = &lhs.kind else {
        panic!("{lhs:?}")
    };
    assert_eq!(name.offset, 0);
}

#[test]
fn names_in_order_of_first_appearance_without_duplicates() {
    let e = parse("b == 1 && !(a.x in [c, b]) || a.x > 2 && 'lit' == d").unwrap();
    assert_eq!(e.names(), vec!["b", "a.x", "c", "d"]);
    assert!(parse("1 == 1").unwrap().names().is_empty());
}

#[test]
fn exprs_are_comparable_and_cloneable() {
    let e = parse("a == 1").unwrap();
    assert_eq!(e.clone(), parse("a == 1").unwrap());
    assert_ne!(e, parse("a == 2").unwrap());
}

#[test]
fn nesting_is_bounded_instead_of_overflowing_the_stack() {
    let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&deep(crate::expr::MAX_DEPTH)), "1");
    let e = err(&deep(crate::expr::MAX_DEPTH + 1));
    assert!(e.message.contains("deeper than 32 levels"), "{}", e.message);
    assert_eq!(e.offset, crate::expr::MAX_DEPTH);
    let e = err(&format!("{}true", "!".repeat(1000)));
    assert!(e.message.contains("deeper than 32 levels"), "{}", e.message);
    let e = err(&format!("{}1{}", "[".repeat(1000), "]".repeat(1000)));
    assert!(e.message.contains("deeper than 32 levels"), "{}", e.message);
}

#[test]
fn length_is_bounded() {
    let long = vec!["a"; 3000].join(" && ");
    let e = err(&long);
    assert_eq!(
        e.message,
        format!(
            "expression is {} bytes, more than the limit of 4096 — split it into several gates",
            long.len()
        )
    );
    // The longest chain that fits still parses and evaluates.
    let fits = vec!["true"; 512].join("&&");
    assert!(fits.len() <= crate::expr::MAX_EXPR_BYTES);
    assert!(parse(&fits)
        .unwrap()
        .eval_bool(&serde_json::json!({}))
        .unwrap());
}
