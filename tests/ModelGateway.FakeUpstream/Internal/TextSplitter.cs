namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Splits a text into stream pieces whose concatenation is exactly the text.</summary>
internal static class TextSplitter
{
    /// <summary>
    /// Cuts <paramref name="text"/> into <paramref name="count"/> pieces, at word starts where there are enough
    /// words, otherwise by halving the longest pieces. Never cuts a surrogate pair, never yields an empty piece,
    /// so a very short text yields fewer pieces than asked for.
    /// </summary>
    public static string[] Split(string text, int count)
    {
        if (text.Length == 0)
        {
            return [];
        }

        count = Math.Clamp(count, 1, text.Length);
        if (count == 1)
        {
            return [text];
        }

        var wordStarts = new List<int>();
        for (var i = 1; i < text.Length; i++)
        {
            if (!char.IsWhiteSpace(text[i]) && char.IsWhiteSpace(text[i - 1]))
            {
                wordStarts.Add(i);
            }
        }

        var cuts = new List<int>(count - 1);
        var words = wordStarts.Count + 1;
        if (words >= count)
        {
            // Spread the cuts evenly over the words; floor(j*words/count) is strictly increasing here.
            for (var j = 1; j < count; j++)
            {
                cuts.Add(wordStarts[(int)((long)j * words / count) - 1]);
            }
        }
        else
        {
            cuts.AddRange(wordStarts);
            while (cuts.Count < count - 1 && TrySplitLongest(text, cuts))
            {
            }
        }

        var pieces = new string[cuts.Count + 1];
        var start = 0;
        for (var i = 0; i < cuts.Count; i++)
        {
            pieces[i] = text[start..cuts[i]];
            start = cuts[i];
        }

        pieces[^1] = text[start..];
        return pieces;
    }

    private static bool TrySplitLongest(string text, List<int> cuts)
    {
        var bestStart = -1;
        var bestLength = 1;
        var bestIndex = 0;
        var start = 0;
        for (var i = 0; i <= cuts.Count; i++)
        {
            var end = i < cuts.Count ? cuts[i] : text.Length;
            if (end - start > bestLength)
            {
                bestStart = start;
                bestLength = end - start;
                bestIndex = i;
            }

            start = end;
        }

        if (bestStart < 0)
        {
            return false;
        }

        var cut = bestStart + (bestLength / 2);
        if (char.IsLowSurrogate(text[cut]) && char.IsHighSurrogate(text[cut - 1]))
        {
            cut = cut + 1 < bestStart + bestLength ? cut + 1 : cut - 1;
            if (cut <= bestStart)
            {
                return false; // the piece is a single surrogate pair
            }
        }

        cuts.Insert(bestIndex, cut);
        return true;
    }
}
