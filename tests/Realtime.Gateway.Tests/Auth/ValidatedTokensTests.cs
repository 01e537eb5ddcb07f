using Microsoft.Extensions.Options;
using Realtime.Gateway.Auth;
using Realtime.Hosting;

namespace Realtime.Gateway.Tests.Auth;

public sealed class ValidatedTokensTests
{
    private const string Key = "0123456789abcdef0123456789abcdef-test-key";
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task The_same_token_again_is_answered_from_the_cache_and_a_different_one_is_not()
    {
        var (validator, _, _) = Create();
        var token = Mint("alice");

        var first = await validator.ValidateAsync(token);
        var again = await validator.ValidateAsync(token);
        var other = await validator.ValidateAsync(Mint("alice", channels: ["room:1"]));

        Assert.True(first.IsValid);
        Assert.Same(first.Identity, again.Identity);
        Assert.True(other.IsValid);
        Assert.NotSame(first.Identity, other.Identity);
        Assert.False(other.Identity!.Permissions.Allows(ChannelAction.Subscribe, "room:2"));
    }

    [Fact]
    public async Task With_size_zero_every_use_is_validated_afresh()
    {
        var (validator, _, _) = Create(cacheSize: 0);
        var token = Mint("alice");

        var first = await validator.ValidateAsync(token);
        var again = await validator.ValidateAsync(token);

        Assert.True(again.IsValid);
        Assert.NotSame(first.Identity, again.Identity);
    }

    [Fact]
    public async Task A_cached_token_is_refused_once_it_expires()
    {
        var (validator, clock, _) = Create();
        var token = Mint("alice", lifetime: TimeSpan.FromMinutes(2));
        Assert.True((await validator.ValidateAsync(token)).IsValid);

        clock.Advance(TimeSpan.FromMinutes(2) - TimeSpan.FromSeconds(1));
        Assert.True((await validator.ValidateAsync(token)).IsValid);

        clock.Advance(TimeSpan.FromSeconds(1) + Skew + TimeSpan.FromSeconds(2));
        Assert.Equal(TokenFailure.Expired, (await validator.ValidateAsync(token)).Failure);
    }

    [Fact]
    public async Task A_cached_token_is_refused_once_its_subject_is_revoked()
    {
        var (validator, clock, revocations) = Create();
        var token = Mint("alice");
        Assert.True((await validator.ValidateAsync(token)).IsValid);

        revocations.RevokeSubject("alice", clock.GetUtcNow().AddSeconds(1), clock.GetUtcNow().AddHours(1));

        Assert.Equal(TokenFailure.Revoked, (await validator.ValidateAsync(token)).Failure);
        Assert.True((await validator.ValidateAsync(Mint("bob"))).IsValid);
    }

    [Fact]
    public async Task A_cached_token_still_meets_its_carriers_rule()
    {
        var (validator, _, _) = Create();
        var longLived = Mint("alice", lifetime: TimeSpan.FromHours(1));
        Assert.True((await validator.ValidateAsync(longLived, TokenCarrier.Header)).IsValid);

        Assert.Equal(TokenFailure.TooLongLivedForUrl, (await validator.ValidateAsync(longLived, TokenCarrier.Url)).Failure);
    }

    [Fact]
    public void An_entry_made_under_another_key_set_is_not_used()
    {
        var cache = new ValidatedTokens(100);
        var hash = ValidatedTokens.Hash("token-a");
        cache.Add(hash, keysGeneration: 1, Identity("alice"));

        Assert.NotNull(cache.Find(hash, keysGeneration: 1));
        Assert.Null(cache.Find(hash, keysGeneration: 2));
        Assert.Null(cache.Find(ValidatedTokens.Hash("token-b"), keysGeneration: 1));
    }

    [Fact]
    public void It_holds_at_most_its_size_and_keeps_what_is_in_use()
    {
        const int size = 100;
        var cache = new ValidatedTokens(size);
        var kept = ValidatedTokens.Hash("kept");
        cache.Add(kept, 0, Identity("kept"));
        for (var i = 0; i < size * 5; i++)
        {
            cache.Add(ValidatedTokens.Hash($"token-{i}"), 0, Identity($"user-{i}"));
            Assert.NotNull(cache.Find(kept, 0));
        }

        var remembered = Enumerable.Range(0, size * 5).Count(i => cache.Find(ValidatedTokens.Hash($"token-{i}"), 0) is not null);
        Assert.InRange(remembered, (size / 2) - 1, size);
        Assert.NotNull(cache.Find(ValidatedTokens.Hash($"token-{(size * 5) - 1}"), 0));
        Assert.Null(cache.Find(ValidatedTokens.Hash("token-0"), 0));
    }

    [Fact]
    public void The_key_is_the_whole_token()
    {
        var token = Mint("alice");
        var tampered = token[..^1] + (token[^1] == 'A' ? 'B' : 'A');

        Assert.Equal(ValidatedTokens.Hash(token), ValidatedTokens.Hash(token));
        Assert.NotEqual(ValidatedTokens.Hash(token), ValidatedTokens.Hash(tampered));
        Assert.NotEqual(ValidatedTokens.Hash(new string('x', 5000)), ValidatedTokens.Hash(new string('x', 4999) + "y"));
    }

    private static (TokenValidator Validator, ManualClock Clock, RevocationList Revocations) Create(int cacheSize = 1000)
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var options = Options.Create(new AuthOptions { SigningKey = Key, ClockSkew = Skew, ValidatedTokenCacheSize = cacheSize });
        var revocations = new RevocationList(clock);
        var keys = new SigningKeys(options, clock, Microsoft.Extensions.Logging.Abstractions.NullLogger<SigningKeys>.Instance);
        return (new TokenValidator(options, keys, revocations, clock), clock, revocations);
    }

    private static string Mint(string subject, string[]? channels = null, TimeSpan? lifetime = null) =>
        DevTokens.Mint(Key, subject, channels ?? ["room:*"], lifetime ?? TimeSpan.FromMinutes(5));

    private static ClientIdentity Identity(string subject) =>
        new(subject, null, ChannelPermissions.From([], new Dictionary<ChannelAction, IReadOnlyList<string>>(), subject, null), DateTimeOffset.UtcNow.AddMinutes(5));

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
