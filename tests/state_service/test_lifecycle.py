from state_service import lifecycle
from state_service.lifecycle import State
from tokenwatch.pan import find_pan_like, looks_like_pan

S = State


def test_machine_is_the_seed_design_plus_deactivation():
    expected = {
        (S.TOKEN_REQUESTED, S.PROVISION_INITIATED),
        (S.PROVISION_INITIATED, S.PROVISION_PENDING),
        (S.PROVISION_PENDING, S.PROVISION_SUCCESS),
        (S.PROVISION_PENDING, S.PROVISION_FAILED),
        (S.PROVISION_SUCCESS, S.WALLET_ACTIVE),
        (S.WALLET_ACTIVE, S.TOKEN_ACTIVE),
        (S.TOKEN_ACTIVE, S.TOKEN_SUSPENDED),
        (S.TOKEN_SUSPENDED, S.TOKEN_ACTIVE),
        (S.TOKEN_ACTIVE, S.TOKEN_EXPIRED),
        (S.TOKEN_SUSPENDED, S.TOKEN_EXPIRED),
        # extension: deletion by cardholder, issuer or wallet
        (S.WALLET_ACTIVE, S.TOKEN_DEACTIVATED),
        (S.TOKEN_ACTIVE, S.TOKEN_DEACTIVATED),
        (S.TOKEN_SUSPENDED, S.TOKEN_DEACTIVATED),
    }
    assert set(lifecycle.legal_pairs()) == expected
    assert lifecycle.TERMINAL_STATES == {S.PROVISION_FAILED, S.TOKEN_EXPIRED,
                                         S.TOKEN_DEACTIVATED}
    assert len(lifecycle.illegal_pairs()) == len(State) ** 2 - len(expected)


def test_creation_only_into_token_requested():
    assert lifecycle.is_legal(None, S.TOKEN_REQUESTED)
    assert not lifecycle.is_legal(None, S.TOKEN_ACTIVE)
    assert not any(t == S.TOKEN_REQUESTED for _, t in lifecycle.legal_pairs())


def test_phases_follow_the_seed_diagram():
    assert lifecycle.phase(S.PROVISION_PENDING) == "provisioning"
    assert lifecycle.phase(S.WALLET_ACTIVE) == "payment"
    assert lifecycle.phase("TokenRequested") == "provisioning"


def test_luhn_and_pan_detection():
    assert looks_like_pan("4111111111111111")
    assert looks_like_pan("5500005555555559")
    assert not looks_like_pan("4111111111111112")  # fails Luhn
    assert not looks_like_pan("411111111111")  # 12 digits
    assert looks_like_pan("card-4111111111111111")  # inside an identifier it still counts
    assert find_pan_like("note: card 4111111111111111 lost, ref 1234") == ["4111111111111111"]
    assert find_pan_like("id 41111111111111111111111") == []  # 23-digit run is not a PAN
    # digit stretches inside hex hashes and UUIDs are not card numbers
    assert find_pan_like("5625319538095e87f1caeb0e62") == []
    assert find_pan_like("pan=4111111111111111;") == ["4111111111111111"]
