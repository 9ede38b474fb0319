from __future__ import annotations

from typing import Any

import pytest

from wsgicache import ConfigurationError, Rule
from wsgicache.keys import KeySpace
from wsgicache.rules import RuleSet


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("no-slash",), {}, "starting with '/'"),
        ((None,), {}, "starting with '/'"),
        (("/x",), {"timeout": -5}, "timeout must be a positive number"),
        (("/x",), {"timeout": 0}, "timeout must be a positive number"),
        (("/x",), {"timeout": "60"}, "timeout must be a positive number"),
        (("/x",), {"timeout": True}, "timeout must be a positive number"),
        (("/x",), {"policy": "always"}, "policy must be 'force' or 'http'"),
        (("/x",), {"query": "q"}, "such as ['q']"),
        (("/x",), {"query": [1]}, "non-empty strings"),
        (("/x",), {"ignore_query": "utm_*"}, "must be a list"),
        (("/x",), {"vary": "Accept"}, "must be a list"),
        (("/x",), {"vary": ["Bad Header"]}, "is not a header name"),
        (("/x",), {"vary_cookies": "session"}, "must be a list"),
        (("/x",), {"methods": "GET"}, "methods must be a list"),
        (("/x",), {"methods": []}, "at least one method"),
        (("/x",), {"methods": ["G ET"]}, "not an HTTP method"),
        (("/x",), {"statuses": 200}, "statuses must be a list"),
        (("/x",), {"statuses": [999]}, "not an HTTP status code"),
        (("/x",), {"stale_if_error": -1}, "stale_if_error must be 0 or a positive"),
        (("/x",), {"stale_while_revalidate": "5"}, "stale_while_revalidate must be 0"),
        (("/x",), {"backend": ""}, "alias of a configured backend"),
        (("/x",), {"unless": "yes"}, "unless must be a callable"),
        (("/x",), {"key": 5}, "key must be a template string or a callable"),
        (("/x",), {"tags": "posts"}, "tags must be a list"),
        (("/x",), {"tags": [""]}, "template string or a callable"),
        (("/x",), {"cache": "no"}, "cache must be True or False"),
        (("/x",), {"allow_set_cookie": 1}, "allow_set_cookie must be True or False"),
        (("/x",), {"host": ""}, "host must be a host pattern"),
        (("/u/<int:id>",), {"tags": ["user:{user_id}"]}, "only has the URL values: id"),
        (("/u/<int:id>",), {"key": "{nope}"}, "uses {nope}"),
        (("/u/<int:id>",), {"tags": ["user:{id"]}, "tags template"),
        (("/u/<nosuch:id>",), {}, "invalid pattern"),
    ],
)
def test_bad_configuration_is_rejected_with_a_helpful_message(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Rule(*args, **kwargs)
    assert message in str(info.value)


def test_good_rule_keeps_its_settings() -> None:
    rule = Rule(
        "/user/<int:user_id>",
        timeout=60,
        vary=["Accept-Language"],
        vary_cookies=["session"],
        tags=["user:{user_id}"],
        query=["page"],
        methods=["get"],
    )
    assert rule.timeout == 60.0
    assert rule.methods == frozenset({"GET", "HEAD"})
    assert rule.query == frozenset({"page"})
    assert rule.arguments == frozenset({"user_id"})
    assert "policy='force'" in repr(rule)


def ruleset(*rules: Rule) -> RuleSet:
    space = KeySpace("")
    return RuleSet([rule.compile(space, 300.0) for rule in rules])


def test_first_matching_rule_wins_in_order() -> None:
    specific = Rule("/admin/<path:rest>", cache=False)
    general = Rule("/<path:rest>", timeout=10)
    rules = ruleset(specific, general)
    found = rules.match("localhost", "/admin/users", "GET")
    assert found is not None and found[0].rule is specific
    found = rules.match("localhost", "/blog/1", "GET")
    assert found is not None and found[0].rule is general
    # Reversed order: the general rule shadows the exclusion.
    rules = ruleset(general, specific)
    found = rules.match("localhost", "/admin/users", "GET")
    assert found is not None and found[0].rule is general


def test_converters_give_typed_values_and_reject_mismatches() -> None:
    rules = ruleset(Rule("/user/<int:user_id>", timeout=10))
    found = rules.match("", "/user/42", "GET")
    assert found is not None and found[1] == {"user_id": 42}
    assert rules.match("", "/user/abc", "GET") is None
    assert rules.match("", "/user/42/", "GET") is None


def test_methods_are_part_of_matching() -> None:
    rules = ruleset(Rule("/x", timeout=10))
    assert rules.match("", "/x", "GET") is not None
    assert rules.match("", "/x", "HEAD") is not None
    assert rules.match("", "/x", "POST") is None
    post_rules = ruleset(Rule("/x", methods=["POST"], timeout=10), Rule("/x", timeout=5))
    found = post_rules.match("", "/x", "POST")
    assert found is not None and found[0].timeout == 10
    found = post_rules.match("", "/x", "GET")
    assert found is not None and found[0].timeout == 5


def test_host_patterns_match_and_provide_values() -> None:
    rules = ruleset(
        Rule("/", host="<tenant>.example.com", timeout=10, tags=["t:{tenant}"]), Rule("/", timeout=1)
    )
    found = rules.match("acme.example.com", "/", "GET")
    assert found is not None and found[1] == {"tenant": "acme"} and found[0].timeout == 10
    found = rules.match("acme.example.com:8080", "/", "GET")
    assert found is not None and found[0].timeout == 10
    found = rules.match("other.org", "/", "GET")
    assert found is not None and found[0].timeout == 1


def test_non_ascii_paths_match_like_the_application_sees_them() -> None:
    rules = ruleset(Rule("/caf\xe9/<name>", timeout=10))
    wsgi_path = "/caf\xe9/cr\xe8me".encode().decode("latin-1")
    found = rules.match("", wsgi_path, "GET")
    assert found is not None and found[1] == {"name": "cr\xe8me"}


def test_timeout_defaults_to_backend_default() -> None:
    compiled = Rule("/x").compile(KeySpace(""), 123.0)
    assert compiled.timeout == 123.0


def test_match_memo_is_bounded_and_consistent() -> None:
    rules = ruleset(Rule("/p/<int:n>", timeout=10))
    for n in range(RuleSet.memo_size * 2 + 5):
        found = rules.match("", f"/p/{n}", "GET")
        assert found is not None and found[1] == {"n": n}
    assert len(rules._memo) <= RuleSet.memo_size


def test_tags_from_templates_and_callables() -> None:
    rule = Rule(
        "/u/<int:user_id>",
        tags=["user:{user_id}", lambda environ, values: ["a", "b"], lambda environ, values: "c"],
    ).compile(KeySpace(""), 1.0)
    assert rule.tags_for({}, {"user_id": 7}) == ["user:7", "a", "b", "c"]
    single = Rule("/u/<int:user_id>", tags=lambda environ, values: [f"u{values['user_id']}"]).compile(
        KeySpace(""), 1.0
    )
    assert single.tags_for({}, {"user_id": 3}) == ["u3"]
