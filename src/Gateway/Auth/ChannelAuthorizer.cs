using System.Collections.Concurrent;
using System.Net.Http.Json;
using Microsoft.Extensions.Options;
using Realtime.Contracts;

namespace Realtime.Gateway.Auth;

/// <summary>Who decides an action on the channels of a namespace.</summary>
public enum ChannelRule
{
    /// <summary>The token's grants (<c>channels</c>, <c>permissions</c>) decide.</summary>
    Token,

    /// <summary>The application's backend decides, through the authorisation callback.</summary>
    Callback,

    /// <summary>Nobody may.</summary>
    Deny,
}

/// <summary>The rule of each action for the channels of one namespace (the part of a channel name before its first <c>:</c>).</summary>
public sealed class NamespaceRules
{
    public ChannelRule Subscribe { get; set; } = ChannelRule.Token;

    public ChannelRule Publish { get; set; } = ChannelRule.Token;

    public ChannelRule History { get; set; } = ChannelRule.Token;

    public ChannelRule Presence { get; set; } = ChannelRule.Token;

    public ChannelRule For(ChannelAction action) => action switch
    {
        ChannelAction.Subscribe => Subscribe,
        ChannelAction.Publish => Publish,
        ChannelAction.History => History,
        _ => Presence,
    };
}

/// <summary>The application's authorisation callback. Section <c>Auth:Callback</c>.</summary>
public sealed class AuthorizationCallbackOptions
{
    /// <summary>
    /// Receives <c>POST {"subject","tenant","channel","action"}</c> and answers
    /// <c>200 {"allow":true|false}</c>. Anything else, or no answer within <see cref="Timeout"/>, denies.
    /// </summary>
    public Uri? Url { get; set; }

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long an answer is reused for the same subject, action and channel.</summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most answers kept; past it the cache starts over (memory stays bounded).</summary>
    public int MaxCachedAnswers { get; set; } = 100_000;
}

/// <summary>
/// Decides whether an identity may do an action on a channel: the channel name must be valid and
/// the subject's access to it not revoked, then the namespace's rule for the action applies (<see cref="AuthOptions.Namespaces"/>, else
/// <see cref="AuthOptions.DefaultRules"/>). Deny by default: a token grants nothing it does not
/// name, and a callback that fails or times out denies (fail closed, and not cached).
/// </summary>
public sealed partial class ChannelAuthorizer : IDisposable
{
    private readonly AuthOptions _options;
    private readonly HttpClient? _callback;
    private readonly TimeProvider _time;
    private readonly ILogger<ChannelAuthorizer> _logger;
    private readonly RevocationList _revocations;
    private readonly ConcurrentDictionary<(string Subject, string? Tenant, ChannelAction Action, string Channel), DateTimeOffset> _allowed = new();
    private readonly ConcurrentDictionary<(string Subject, string? Tenant, ChannelAction Action, string Channel), DateTimeOffset> _denied = new();

    public ChannelAuthorizer(IOptions<AuthOptions> options, RevocationList revocations, TimeProvider time, ILogger<ChannelAuthorizer> logger)
    {
        _revocations = revocations;
        _options = options.Value;
        _time = time;
        _logger = logger;
        if (_options.Callback.Url is not null)
        {
            _callback = new HttpClient { Timeout = _options.Callback.Timeout };
        }
    }

    public async ValueTask<bool> AuthorizeAsync(ClientIdentity identity, ChannelAction action, string channel)
    {
        if (!ChannelName.IsValid(channel) || _revocations.IsChannelRevoked(identity, channel))
        {
            return false;
        }

        var colon = channel.IndexOf(':', StringComparison.Ordinal);
        var ns = colon < 0 ? string.Empty : channel[..colon];
        var rules = _options.Namespaces.TryGetValue(ns, out var own) ? own : _options.DefaultRules;
        return rules.For(action) switch
        {
            ChannelRule.Token => identity.Permissions.Allows(action, channel),
            ChannelRule.Callback => await AskAsync(identity, action, channel),
            _ => false,
        };
    }

    public void Dispose() => _callback?.Dispose();

    private async ValueTask<bool> AskAsync(ClientIdentity identity, ChannelAction action, string channel)
    {
        if (_callback is null)
        {
            return false;
        }

        var key = (identity.Subject, identity.Tenant, action, channel);
        var now = _time.GetUtcNow();
        if (_allowed.TryGetValue(key, out var until) && until > now)
        {
            return true;
        }

        if (_denied.TryGetValue(key, out until) && until > now)
        {
            return false;
        }

        bool allow;
        try
        {
            using var response = await _callback.PostAsJsonAsync(
                _options.Callback.Url,
                new CallbackRequest(identity.Subject, identity.Tenant, channel, action.ToString().ToLowerInvariant()));
            if (!response.IsSuccessStatusCode)
            {
                LogCallbackRefused((int)response.StatusCode);
                return false;
            }

            allow = (await response.Content.ReadFromJsonAsync<CallbackAnswer>())?.Allow == true;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException or NotSupportedException)
        {
            LogCallbackFailed(e.GetType().Name);
            return false;
        }

        var cache = allow ? _allowed : _denied;
        if (cache.Count >= _options.Callback.MaxCachedAnswers)
        {
            cache.Clear();
        }

        cache[key] = now + _options.Callback.CacheTtl;
        return allow;
    }

    private sealed record CallbackRequest(string Subject, string? Tenant, string Channel, string Action);

    private sealed record CallbackAnswer(bool Allow);

    [LoggerMessage(EventId = 6200, Level = LogLevel.Warning, Message = "Authorisation callback answered {Status}; denied")]
    private partial void LogCallbackRefused(int status);

    [LoggerMessage(EventId = 6201, Level = LogLevel.Warning, Message = "Authorisation callback failed ({Kind}); denied")]
    private partial void LogCallbackFailed(string kind);
}
