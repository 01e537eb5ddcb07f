using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Realtime.Gateway.Auth;

/// <summary>
/// The keys tokens may be signed with: those configured (<see cref="AuthOptions.SigningKey"/>,
/// <see cref="AuthOptions.Keys"/>) and, when <see cref="AuthOptions.JwksUrl"/> is set, an
/// identity provider's key set, held as an immutable snapshot that refreshes swap in whole.
/// </summary>
/// <remarks>
/// Validation never waits on the key set except for a token whose <c>kid</c> is unknown, which
/// triggers one refresh (rate-limited by <see cref="AuthOptions.JwksMinRefreshInterval"/>, shared
/// by every request that asks meanwhile).
/// </remarks>
public sealed partial class SigningKeys : IDisposable
{
    private readonly AuthOptions _options;
    private readonly IReadOnlyList<SecurityKey> _configured;
    private readonly HttpClient? _http;
    private readonly TimeProvider _time;
    private readonly ILogger<SigningKeys> _logger;
    private readonly Lock _refreshGate = new();
    private IReadOnlyList<SecurityKey> _fetched = [];
    private Task? _refresh;
    private DateTimeOffset _lastFetch = DateTimeOffset.MinValue;
    private int _generation;

    public SigningKeys(IOptions<AuthOptions> options, TimeProvider time, ILogger<SigningKeys> logger)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        _configured = [.. Configured(_options)];
        if (_options.JwksUrl is not null)
        {
            _http = new HttpClient { Timeout = _options.JwksTimeout };
        }
    }

    /// <summary>Changes whenever a fetch replaces the key set: what was validated under another generation is checked again.</summary>
    public int Generation => Volatile.Read(ref _generation);

    /// <summary>True when tokens with an unknown <c>kid</c> may become valid after a refresh.</summary>
    public bool CanRefresh => _http is not null;

    /// <summary>
    /// The keys that may have signed a token with this <c>kid</c>: those with that id; for a token
    /// without one, the keys without one (<see cref="AuthOptions.SigningKey"/>, unnamed configured keys).
    /// </summary>
    public IEnumerable<SecurityKey> Resolve(string? kid)
    {
        foreach (var key in _configured.Concat(Volatile.Read(ref _fetched)))
        {
            if (string.Equals(key.KeyId ?? string.Empty, kid ?? string.Empty, StringComparison.Ordinal))
            {
                yield return key;
            }
        }
    }

    /// <summary>Fetches the key set unless that happened within the minimum interval; concurrent callers share one fetch.</summary>
    public Task RefreshAsync(bool force)
    {
        if (_http is null)
        {
            return Task.CompletedTask;
        }

        lock (_refreshGate)
        {
            if (_refresh is { IsCompleted: false } running)
            {
                return running;
            }

            var since = _time.GetUtcNow() - _lastFetch;
            if (since < _options.JwksMinRefreshInterval || (!force && since < _options.JwksRefreshInterval))
            {
                return Task.CompletedTask;
            }

            _lastFetch = _time.GetUtcNow();
            _refresh = FetchAsync();
            return _refresh;
        }
    }

    public void Dispose() => _http?.Dispose();

    private async Task FetchAsync()
    {
        try
        {
            var json = await _http!.GetStringAsync(_options.JwksUrl);
            var set = new JsonWebKeySet(json);
            var keys = set.GetSigningKeys().Where(k => k is RsaSecurityKey or ECDsaSecurityKey or JsonWebKey).ToList();
            Volatile.Write(ref _fetched, keys);
            Interlocked.Increment(ref _generation);
            LogFetched(keys.Count);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or ArgumentException or InvalidOperationException)
        {
            // The previous keys stay: an identity provider's hiccup must not log everyone out.
            LogFetchFailed(e.Message);
        }
    }

    private static IEnumerable<SecurityKey> Configured(AuthOptions options)
    {
        if (!string.IsNullOrEmpty(options.SigningKey))
        {
            yield return new SymmetricSecurityKey(Encoding.UTF8.GetBytes(options.SigningKey));
        }

        foreach (var key in options.Keys)
        {
            SecurityKey securityKey = key.Algorithm switch
            {
                "RS256" => new RsaSecurityKey(ImportPem(RSA.Create(), key.PublicKeyPem!)),
                "ES256" => new ECDsaSecurityKey(ImportPem(ECDsa.Create(), key.PublicKeyPem!)),
                _ => new SymmetricSecurityKey(Encoding.UTF8.GetBytes(key.Secret!)),
            };
            securityKey.KeyId = key.Id;
            yield return securityKey;
        }
    }

    private static T ImportPem<T>(T algorithm, string pem)
        where T : AsymmetricAlgorithm
    {
        algorithm.ImportFromPem(pem);
        return algorithm;
    }

    [LoggerMessage(EventId = 6100, Level = LogLevel.Information, Message = "Fetched {Count} signing keys from the JWKS")]
    private partial void LogFetched(int count);

    [LoggerMessage(EventId = 6101, Level = LogLevel.Warning, Message = "Could not fetch the JWKS; keeping the previous keys: {Reason}")]
    private partial void LogFetchFailed(string reason);
}

/// <summary>Fetches the JWKS at start and every <see cref="AuthOptions.JwksRefreshInterval"/>, when one is configured.</summary>
internal sealed class JwksRefresher(SigningKeys keys, IOptions<AuthOptions> options) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!keys.CanRefresh)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            await keys.RefreshAsync(force: false);
            await Task.Delay(options.Value.JwksRefreshInterval, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }
}
