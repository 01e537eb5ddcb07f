namespace Realtime.Contracts;

/// <summary>Rules for node ids: they become part of a Kafka topic name, so they use only Kafka's topic characters.</summary>
public static class NodeId
{
    public const int MaxLength = 64;

    public static bool IsValid(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
