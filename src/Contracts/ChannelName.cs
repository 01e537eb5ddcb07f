namespace Realtime.Contracts;

/// <summary>
/// Rules for channel names, shared by every entry point (WebSocket, gRPC) so that a
/// name accepted by one is accepted by all.
/// </summary>
/// <remarks>
/// 1-200 characters from <c>[A-Za-z0-9]</c> and <c>: _ - . @ / = , +</c>. No spaces,
/// no braces (they would break the Redis hash tag), no glob characters (<c>* ?</c>) so a
/// channel can never be mistaken for a permission pattern.
/// </remarks>
public static class ChannelName
{
    public const int MaxLength = 200;

    public static bool IsValid(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!IsAllowed(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsAllowed(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is ':' or '_' or '-' or '.' or '@' or '/' or '=' or ',' or '+';
}
