use crate::{load, SecretRef, SecretSource};

fn plan(task: &str) -> String {
    format!(
        "name: s\nroles:\n  r: {{ image: img }}\nphases:\n  - id: p\n    tasks:\n      - id: t\n        role: r\n        run: echo\n{task}"
    )
}

fn errors(task: &str) -> Vec<String> {
    load("s.yaml", &plan(task))
        .unwrap_err()
        .diagnostics
        .iter()
        .map(|d| format!("{}:{} {} ({})", d.line, d.col, d.message, d.hint))
        .collect()
}

#[test]
fn env_and_list_references_load() {
    let p = load(
        "s.yaml",
        &plan(
            "        env:\n          PLAIN: x\n          GH_TOKEN: { secret: { from_env: CI_GH_TOKEN } }\n        secrets:\n          - { name: deploy.key, secret: { from_file: /etc/baton/deploy.key } }\n          - { name: DB_PASS, secret: { from_file: /etc/db }, as: env }\n",
        ),
    )
    .unwrap();
    let t = &p.phases[0].tasks[0];
    assert_eq!(t.env.len(), 1);
    assert_eq!(
        t.secrets,
        [
            SecretRef {
                name: "GH_TOKEN".into(),
                source: SecretSource::FromEnv("CI_GH_TOKEN".into()),
                as_file: false
            },
            SecretRef {
                name: "deploy.key".into(),
                source: SecretSource::FromFile("/etc/baton/deploy.key".into()),
                as_file: true
            },
            SecretRef {
                name: "DB_PASS".into(),
                source: SecretSource::FromFile("/etc/db".into()),
                as_file: false
            },
        ]
    );
}

#[test]
fn a_value_is_refused_where_a_reference_belongs() {
    let e = errors("        env:\n          T: { secret: hunter22 }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("11:24 `secret` must name where the worker finds the value"),
        "{e:?}"
    );
    let e = errors("        env:\n          T: { secret: { value: hunter22 } }\n");
    assert!(e[0].contains("unknown key `value` in `secret`"), "{e:?}");
}

#[test]
fn relative_paths_bad_names_and_doubles_are_refused() {
    let e = errors(
        "        secrets:\n          - { name: k, secret: { from_file: etc/key } }\n          - { name: ../k, secret: { from_env: K } }\n          - { name: 1X, secret: { from_env: K }, as: env }\n          - { name: k, secret: { from_env: 'A-B' } }\n          - { name: j, secret: { from_env: K, from_file: /k } }\n          - { name: j, secret: { from_env: K }, as: disk }\n",
    );
    let joined = e.join("\n");
    for expected in [
        "11:45 `from_file: etc/key` is not an absolute path",
        "12:21 secret name `../k` is not a valid file name",
        "13:21 secret name `1X` is not a valid environment variable name",
        "14:44 `A-B` is not a valid environment variable name",
        "15:34 `secret` needs exactly one of `from_env` and `from_file`",
        "16:53 `as: disk` is not a way to deliver a secret",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in\n{joined}"
        );
    }
    let e = errors(
        "        env:\n          K: x\n        secrets:\n          - { name: K, secret: { from_env: K }, as: env }\n",
    );
    assert!(
        e[0].contains("secret `K` is given twice as a variable"),
        "{e:?}"
    );
}
