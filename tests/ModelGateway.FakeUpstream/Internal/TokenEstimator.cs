namespace ModelGateway.FakeUpstream.Internal;

/// <summary>The fake's deliberately simple token arithmetic: about four characters per token.</summary>
internal static class TokenEstimator
{
    public static int FromCharacters(long characters) =>
        (int)Math.Clamp((characters + 3) / 4, 1, int.MaxValue);
}
