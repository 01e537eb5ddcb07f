namespace Realtime.Gateway.Auth;

/// <summary>
/// The channels a token grants, as glob patterns: <c>*</c> matches any run of characters
/// (including none), <c>?</c> exactly one; everything else matches itself. <c>room:*</c>
/// grants <c>room:1</c> and <c>room:a:b</c>; <c>*</c> grants every channel.
/// </summary>
public sealed class ChannelPatterns
{
    private readonly string[] _patterns;

    public ChannelPatterns(IEnumerable<string> patterns) => _patterns = [.. patterns.Where(p => p.Length > 0)];

    public static ChannelPatterns None { get; } = new([]);

    public IReadOnlyList<string> Patterns => _patterns;

    /// <summary>Whether <paramref name="other"/> holds the same patterns in the same order.</summary>
    public bool SameAs(ChannelPatterns other) => _patterns.AsSpan().SequenceEqual(other._patterns);

    public bool Allows(ReadOnlySpan<char> channel)
    {
        foreach (var pattern in _patterns)
        {
            if (Matches(pattern, channel))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Iterative glob match with single-star backtracking: linear in practice, never exponential.</summary>
    internal static bool Matches(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}
