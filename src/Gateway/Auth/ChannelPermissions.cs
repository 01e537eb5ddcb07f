namespace Realtime.Gateway.Auth;

/// <summary>What a client may do with a channel; each action is granted separately.</summary>
public enum ChannelAction
{
    Subscribe,
    Publish,
    History,
    Presence,
}

/// <summary>
/// The channel grants of a token, per action: the <c>channels</c> claim grants every action,
/// the <c>permissions</c> claim (<c>{"subscribe":[...],"publish":[...],"history":[...],"presence":[...]}</c>)
/// grants one action each. Patterns are globs (<see cref="ChannelPatterns"/>) and may name the
/// token's own subject and tenant: <c>user:{sub}</c>, <c>org:{tenant}:*</c>.
/// </summary>
/// <remarks>
/// A placeholder whose value is empty or holds a glob character (<c>*</c>, <c>?</c>) drops its
/// pattern: a subject named <c>*</c> must not turn <c>user:{sub}</c> into a grant of every user.
/// </remarks>
public sealed class ChannelPermissions
{
    private static readonly ChannelAction[] Actions = Enum.GetValues<ChannelAction>();
    private readonly ChannelPatterns[] _byAction;

    private ChannelPermissions(ChannelPatterns[] byAction) => _byAction = byAction;

    public static ChannelPermissions None { get; } = new([.. Actions.Select(_ => ChannelPatterns.None)]);

    /// <summary>The same patterns for every action (the <c>channels</c> claim alone).</summary>
    public static ChannelPermissions All(IEnumerable<string> patterns)
    {
        var shared = new ChannelPatterns(patterns);
        return new([.. Actions.Select(_ => shared)]);
    }

    public static ChannelPermissions From(
        IEnumerable<string> everyAction,
        IReadOnlyDictionary<ChannelAction, IReadOnlyList<string>> perAction,
        string subject,
        string? tenant)
    {
        var common = everyAction.ToList();
        var byAction = new ChannelPatterns[Actions.Length];
        foreach (var action in Actions)
        {
            var patterns = new ChannelPatterns(
                common.Concat(perAction.TryGetValue(action, out var own) ? own : [])
                    .Select(p => Expand(p, subject, tenant))
                    .OfType<string>());
            // Actions with the same grants (every action, for a token with only `channels`)
            // share one instance: a connection holds its identity for life.
            byAction[(int)action] = byAction.FirstOrDefault(known => known is not null && known.SameAs(patterns)) ?? patterns;
        }

        return new(byAction);
    }

    public bool Allows(ChannelAction action, ReadOnlySpan<char> channel) => _byAction[(int)action].Allows(channel);

    public ChannelPatterns For(ChannelAction action) => _byAction[(int)action];

    private static string? Expand(string pattern, string subject, string? tenant)
    {
        if (!pattern.Contains('{', StringComparison.Ordinal))
        {
            return pattern;
        }

        foreach (var (placeholder, value) in new[] { ("{sub}", subject), ("{tenant}", tenant) })
        {
            if (!pattern.Contains(placeholder, StringComparison.Ordinal))
            {
                continue;
            }

            if (string.IsNullOrEmpty(value) || value.AsSpan().IndexOfAny('*', '?') >= 0)
            {
                return null;
            }

            pattern = pattern.Replace(placeholder, value, StringComparison.Ordinal);
        }

        // An unknown placeholder stays literal: channel names cannot hold braces, so it matches nothing.
        return pattern;
    }
}
